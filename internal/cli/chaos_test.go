package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// switchable serves a sim fleet, or answers 503 while down.
type switchable struct {
	h    http.Handler
	down atomic.Bool
	hits atomic.Int64
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	if s.down.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"message":"down for the drill","type":"server_error","code":null}}`)
		return
	}
	s.h.ServeHTTP(w, r)
}

func refusedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// oneRequest sends a chat request and reports its status, whether it
// completed (a JSON answer, or a stream ending in [DONE] with the sim's
// text), and the attempts header.
func oneRequest(t *testing.T, client *http.Client, url, key, model string, stream bool, i int) (status int, complete bool, attempts int, retryAfter string) {
	body := fmt.Sprintf(`{"model":%q,"max_tokens":8,"stream":%v,"messages":[{"role":"user","content":"chaos %d"}]}`, model, stream, i)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("request %d: %v", i, err)
		return 0, false, 0, ""
	}
	defer resp.Body.Close()
	attempts, _ = strconv.Atoi(resp.Header.Get("x-tidegate-attempts"))
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, false, attempts, resp.Header.Get("Retry-After")
	}
	if !stream {
		var out struct {
			Choices []struct{ Message struct{ Content string } }
		}
		err := json.NewDecoder(resp.Body).Decode(&out)
		return 200, err == nil && len(out.Choices) == 1 && strings.HasPrefix(out.Choices[0].Message.Content, sim.Marker), attempts, ""
	}
	sse := readSSE(resp.Body)
	// One answer, whole, from one target: it starts with the sim's marker
	// exactly once (no spliced output from a second attempt).
	whole := sse.done && sse.errors == 0 && strings.HasPrefix(sse.text, sim.Marker) && strings.Count(sse.text, sim.Marker) == 1
	return 200, whole, attempts, ""
}

// sseRead is what a client made of an OpenAI stream.
type sseRead struct {
	text    string // choice 0's content
	done    bool   // [DONE] came
	errors  int    // error events
	resumed int    // x_tidegate_resumed marks
}

func readSSE(body io.Reader) sseRead {
	var out sseRead
	var text strings.Builder
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "data: ")
		switch {
		case line == "[DONE]":
			out.done = true
		case strings.HasPrefix(line, `{"error"`):
			out.errors++
		case strings.HasPrefix(line, "{"):
			var c struct {
				Choices []struct{ Delta struct{ Content *string } }
				Resumed int `json:"x_tidegate_resumed"`
			}
			if json.Unmarshal([]byte(line), &c) != nil {
				continue
			}
			out.resumed += c.Resumed
			if len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil {
				text.WriteString(*c.Choices[0].Delta.Content)
			}
		}
	}
	out.text = text.String()
	return out
}

// TestChaosOneTargetFailing: three targets, the first failing in each way in
// turn: every request, streaming or not, succeeds, answered and billed once.
func TestChaosOneTargetFailing(t *testing.T) {
	good := simUpstream(t, sim.Model{Name: "ok", OutputTokens: 8})
	faults := []struct {
		name  string
		model sim.Model
		url   string
	}{
		{"refused", sim.Model{Name: "x"}, refusedURL(t)},
		{"503", sim.Model{Name: "x", Fault: sim.Fault{Kind: sim.Fault503}}, ""},
		{"429 with Retry-After", sim.Model{Name: "x", Fault: sim.Fault{Kind: sim.Fault429, RetryAfter: 30 * time.Second}}, ""},
		{"hang before headers", sim.Model{Name: "x", Fault: sim.Fault{Kind: sim.FaultHang}}, ""},
		{"stall before the first token", sim.Model{Name: "x", OutputTokens: 8, Fault: sim.Fault{Kind: sim.FaultStall}}, ""},
		{"in-stream error before content", sim.Model{Name: "x", OutputTokens: 8, Fault: sim.Fault{Kind: sim.FaultErrEvent}}, ""},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			url := f.url
			if url == "" {
				url = simUpstream(t, f.model).URL
			}
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
			g := startGateway(t, fmt.Sprintf(`
store: %q
master_key: %s
reliability: {first_token_timeout: 300ms, base_ejection: 30s}
providers:
  - {name: bad, type: openai, base_url: %s/v1, api_key: k, timeout: 300ms}
  - {name: good1, type: openai, base_url: %s/v1, api_key: k}
  - {name: good2, type: openai, base_url: %s/v1, api_key: k}
prices:
  - {model: bad/x, currency: CNY, input: 1, output: 2}
  - {model: good1/ok, currency: CNY, input: 1, output: 2}
  - {model: good2/ok, currency: CNY, input: 1, output: 2}
models:
  - {name: m, targets: [bad/x, good1/ok, good2/ok]}
`, dsn, testKey, url, good.URL, good.URL))
			_, key := createKey(t, g, `{"name":"chaos","project":"p","budget":{"amount":100,"currency":"CNY","period":"total"}}`)
			client := &http.Client{Timeout: 20 * time.Second}
			const n = 20
			var wg sync.WaitGroup
			var okCount atomic.Int64
			for i := 0; i < 2*n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					status, complete, _, _ := oneRequest(t, client, g.URL, key, "m", i%2 == 1, i)
					if status == 200 && complete {
						okCount.Add(1)
					} else {
						t.Errorf("request %d (stream %v): status %d, complete %v", i, i%2 == 1, status, complete)
					}
				}(i)
			}
			wg.Wait()
			if okCount.Load() != 2*n {
				t.Fatalf("%d of %d requests succeeded", okCount.Load(), 2*n)
			}
			st, err := openStore(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			waitUntil(t, 5*time.Second, "one ledger record per request", func() bool {
				n2, _, _, _, _ := st.LedgerTotals(context.Background())
				return n2 >= 2*n
			})
			rows, _ := st.UsageReport(context.Background(), "provider", time.Now().Add(-time.Hour), time.Time{})
			records, _, _, _, _ := st.LedgerTotals(context.Background())
			if records != 2*n {
				t.Errorf("ledger holds %d records for %d requests: %+v", records, 2*n, rows)
			}
			for _, r := range rows {
				if r.Group == "bad" {
					t.Errorf("the failing target billed %d requests", r.Requests)
				}
			}
		})
	}
}

// TestChaosAllTargetsFailing: with every target down, attempts stay within
// 1.2 × requests, clients get a fast 503 with Retry-After, and service comes
// back within seconds of the targets.
func TestChaosAllTargetsFailing(t *testing.T) {
	fleet := sim.New("up", 1, []sim.Model{{Name: "ok", OutputTokens: 4}}).Handler()
	ups := []*switchable{{h: fleet}, {h: fleet}, {h: fleet}}
	var urls []string
	for _, u := range ups {
		u.down.Store(true)
		srv := httptest.NewServer(u)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	g := startGateway(t, fmt.Sprintf(`
store: sqlite:%s
master_key: %s
reliability: {base_ejection: 1s, max_ejection: 2s}
providers:
  - {name: a, type: openai, base_url: %s/v1, api_key: k}
  - {name: b, type: openai, base_url: %s/v1, api_key: k}
  - {name: c, type: openai, base_url: %s/v1, api_key: k}
models:
  - {name: m, targets: [a/ok, b/ok, c/ok]}
`, filepath.Join(t.TempDir(), "t.db"), testKey, urls[0], urls[1], urls[2]))
	client := &http.Client{Timeout: 10 * time.Second}
	const requests = 200
	attempts, fast503 := 0, 0
	for i := 0; i < requests; i++ {
		start := time.Now()
		status, _, a, retryAfter := oneRequest(t, client, g.URL, testKey, "m", false, i)
		attempts += a
		if status == 503 && retryAfter != "" && time.Since(start) < 100*time.Millisecond {
			fast503++
		}
		if status == 200 {
			t.Fatalf("request %d succeeded with every target down", i)
		}
	}
	var hits int64
	for _, u := range ups {
		hits += u.hits.Load()
	}
	if float64(attempts) > 1.2*requests || float64(hits) > 1.2*requests {
		t.Errorf("%d attempts (%d upstream hits) for %d requests; want at most 1.2×", attempts, hits, requests)
	}
	if fast503 < requests/2 {
		t.Errorf("only %d of %d answers were a fast 503 with Retry-After", fast503, requests)
	}

	for _, u := range ups {
		u.down.Store(false)
	}
	back := time.Now()
	waitUntil(t, 10*time.Second, "recovery", func() bool {
		status, complete, _, _ := oneRequest(t, client, g.URL, testKey, "m", false, -1)
		return status == 200 && complete
	})
	if d := time.Since(back); d > 5*time.Second {
		t.Errorf("service came back %v after the targets", d)
	}
}

// TestDeadline: a client deadline with slow targets ends at about that
// deadline with 504, and the upstream call is cancelled.
func TestDeadline(t *testing.T) {
	ended := make(chan time.Time, 4)
	h := sim.New("up", 1, []sim.Model{{Name: "slow", TTFT: 5 * time.Second, OutputTokens: 4}}).Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		ended <- time.Now()
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf(`
store: sqlite:%s
master_key: %s
providers:
  - {name: a, type: openai, base_url: %s/v1, api_key: k}
`, filepath.Join(t.TempDir(), "t.db"), testKey, up.URL))
	for _, stream := range []bool{false, true} {
		start := time.Now()
		resp := postChat(t, g.URL, fmt.Sprintf(`{"model":"a/slow","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream), "x-tidegate-timeout", "1s")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusGatewayTimeout || took < 900*time.Millisecond || took > 2500*time.Millisecond {
			t.Errorf("stream %v: status %d after %v; want 504 at about 1s", stream, resp.StatusCode, took)
		}
		select {
		case at := <-ended:
			if at.Sub(start) > 2500*time.Millisecond {
				t.Errorf("the upstream ran until %v", at.Sub(start))
			}
		case <-time.After(5 * time.Second):
			t.Error("the upstream call was not cancelled")
		}
	}
}

// TestStallAfterContent: a stream whose upstream goes silent after content
// ends with one error event and no [DONE], is not spliced with another
// target's output, and is billed for what was generated, flagged estimated.
func TestStallAfterContent(t *testing.T) {
	stalls := simUpstream(t, sim.Model{Name: "x", OutputTokens: 40, Fault: sim.Fault{Kind: sim.FaultStall, AfterChunks: 5}})
	good := simUpstream(t, sim.Model{Name: "ok", OutputTokens: 8})
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
	g := startGateway(t, fmt.Sprintf(`
store: %q
master_key: %s
reliability: {idle_timeout: 300ms}
providers:
  - {name: bad, type: openai, base_url: %s/v1, api_key: k}
  - {name: good, type: openai, base_url: %s/v1, api_key: k}
prices:
  - {model: bad/x, currency: CNY, input: 1, output: 2}
models:
  - {name: m, targets: [bad/x, good/ok]}
`, dsn, testKey, stalls.URL, good.URL))
	start := time.Now()
	resp := postChat(t, g.URL, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if time.Since(start) > 5*time.Second {
		t.Errorf("the stalled stream took %v to end", time.Since(start))
	}
	if strings.Count(body, `{"error"`) != 1 || !strings.Contains(body, `"stream_stalled"`) || strings.Contains(body, "[DONE]") {
		t.Errorf("want one stalled error event and no [DONE]:\n%s", body)
	}
	if strings.Count(body, sim.Marker) != 1 || resp.Header.Get("x-tidegate-attempts") != "1" {
		t.Errorf("output was spliced or retried after the commit point:\n%s", body)
	}
	st, err := openStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitUntil(t, 5*time.Second, "the record", func() bool {
		n, _, _, _, _ := st.LedgerTotals(context.Background())
		return n == 1
	})
	rows, _ := st.UsageReport(context.Background(), "provider", time.Now().Add(-time.Hour), time.Time{})
	if len(rows) != 1 || rows[0].Group != "bad" || rows[0].Estimated != 1 || rows[0].CompletionTokens == 0 || rows[0].Cost == 0 {
		t.Errorf("billing of the broken stream: %+v", rows)
	}
}

// TestLoadShedding: past a target's or a route's concurrency limit, requests
// are refused at once with Retry-After instead of queueing.
func TestLoadShedding(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(`
store: sqlite:%s
master_key: %s
providers:
  - name: sim
    type: sim
    max_concurrency: 2
    sim: {models: [{name: slow, ttft: 800ms, output_tokens: 4}]}
models:
  - {name: any, targets: [sim/slow]}
  - {name: one, targets: [sim/slow], max_concurrency: 1}
`, filepath.Join(t.TempDir(), "t.db"), testKey))
	type result struct {
		status     int
		code       string
		retryAfter string
		took       time.Duration
	}
	burst := func(model string, n int) []result {
		out := make([]result, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				start := time.Now()
				req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions",
					strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
				req.Header.Set("Authorization", "Bearer "+testKey)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var e struct{ Error struct{ Code string } }
				json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				out[i] = result{resp.StatusCode, e.Error.Code, resp.Header.Get("Retry-After"), time.Since(start)}
			}(i)
		}
		wg.Wait()
		return out
	}
	count := func(rs []result, status int, code string) int {
		n := 0
		for _, r := range rs {
			if r.status == status && r.code == code && (status == 200 || (r.retryAfter != "" && r.took < 300*time.Millisecond)) {
				n++
			}
		}
		return n
	}
	if rs := burst("any", 5); count(rs, 200, "") != 2 || count(rs, 503, "all_targets_busy") != 3 {
		t.Errorf("5 at once on a target limited to 2: %+v", rs)
	}
	if rs := burst("one", 3); count(rs, 200, "") != 1 || count(rs, 429, "route_busy") != 2 {
		t.Errorf("3 at once on a route limited to 1: %+v", rs)
	}
	if rs := burst("any", 2); count(rs, 200, "") != 2 {
		t.Errorf("slots were not given back: %+v", rs)
	}
}

// TestHedging: with one slow-tailed target, hedging cuts the p99 of time to
// first token, at a bounded extra cost, and bills the losing attempts.
func TestHedging(t *testing.T) {
	tail := simUpstream(t, sim.Model{Name: "x", OutputTokens: 4, TTFT: 10 * time.Millisecond, TailTTFT: 1500 * time.Millisecond, TailRate: 0.25})
	fast := simUpstream(t, sim.Model{Name: "ok", OutputTokens: 4, TTFT: 30 * time.Millisecond})
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
	g := startGateway(t, fmt.Sprintf(`
store: %q
master_key: %s
providers:
  - {name: tail, type: openai, base_url: %s/v1, api_key: k}
  - {name: fast, type: openai, base_url: %s/v1, api_key: k}
prices:
  - {model: tail/x, currency: CNY, input: 1, output: 2}
  - {model: fast/ok, currency: CNY, input: 1, output: 2}
models:
  - {name: plain, targets: [tail/x, fast/ok]}
  - {name: hedged, targets: [tail/x, fast/ok], hedge_after: 150ms}
`, dsn, testKey, tail.URL, fast.URL))
	ttfb := func(model string, n int) (p99 time.Duration, attempts int) {
		lat := make([]time.Duration, n)
		var total atomic.Int64
		var wg sync.WaitGroup
		var next atomic.Int64
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions",
						strings.NewReader(fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"h %d"}]}`, model, i)))
					req.Header.Set("Authorization", "Bearer "+testKey)
					start := time.Now()
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					br := bufio.NewReader(resp.Body)
					br.ReadByte()
					lat[i] = time.Since(start)
					rest, _ := io.ReadAll(br)
					resp.Body.Close()
					if !strings.Contains(string(rest), "[DONE]") || strings.Count(string(rest), sim.Marker) != 1 {
						t.Errorf("%s %d: incomplete or spliced stream", model, i)
					}
					a, _ := strconv.Atoi(resp.Header.Get("x-tidegate-attempts"))
					total.Add(int64(a))
				}
			}()
		}
		wg.Wait()
		sortDurations(lat)
		return lat[len(lat)*99/100], int(total.Load())
	}
	const n = 40
	plainP99, _ := ttfb("plain", n)
	hedgedP99, attempts := ttfb("hedged", n)
	if plainP99 < time.Second || hedgedP99 > 700*time.Millisecond {
		t.Errorf("p99 time to first token: %v without hedging, %v with; want the tail cut", plainP99, hedgedP99)
	}
	if float64(attempts) > 1.6*n {
		t.Errorf("hedging cost %d attempts for %d requests", attempts, n)
	}
	st, err := openStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Every attempt is billed once: the plain requests, and for the hedged
	// ones the winners and the cancelled hedges.
	waitUntil(t, 5*time.Second, "hedges billed", func() bool {
		recs, _, _, _, _ := st.LedgerTotals(context.Background())
		return recs == int64(n+attempts)
	})
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

// TestContextAwarePlans: a target too small for the prompt is skipped; after
// a context-length error only a larger-context target is tried; a prompt
// longer than every target is refused without calling any.
func TestContextAwarePlans(t *testing.T) {
	small := simUpstream(t, sim.Model{Name: "x", OutputTokens: 4, ContextWindow: 50})
	big := simUpstream(t, sim.Model{Name: "y", OutputTokens: 4, ContextWindow: 100000})
	g := startGateway(t, fmt.Sprintf(`
store: sqlite:%s
master_key: %s
providers:
  - {name: tiny, type: openai, base_url: %s/v1, api_key: k, models: [x], context_windows: {x: 100}}
  - {name: liar, type: openai, base_url: %s/v1, api_key: k, models: [x], context_windows: {x: 1000}}
  - {name: mid, type: openai, base_url: %s/v1, api_key: k, models: [y], context_windows: {y: 800}}
  - {name: big, type: openai, base_url: %s/v1, api_key: k, models: [y], context_windows: {y: 100000}}
models:
  - {name: m, targets: [tiny/x, liar/x, mid/y, big/y]}
  - {name: short, targets: [tiny/x]}
`, filepath.Join(t.TempDir(), "t.db"), testKey, small.URL, small.URL, big.URL, big.URL))
	prompt := strings.Repeat("tide gate ", 200) // ~2,000 bytes: about 500 tokens
	send := func(model string) (int, string, string, string) {
		resp := postChat(t, g.URL, fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}]}`, model, prompt))
		defer resp.Body.Close()
		var e struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code, resp.Header.Get("x-tidegate-route"), resp.Header.Get("x-tidegate-attempts")
	}
	// tiny (100) is skipped; liar claims 1000 but its upstream refuses the
	// prompt; mid (800) is not larger than 1000 and is skipped; big serves.
	if status, _, route, attempts := send("m"); status != 200 || route != "big/y" || attempts != "2" {
		t.Errorf("m: status %d route %s attempts %s; want big/y after liar/x", status, route, attempts)
	}
	if status, code, _, attempts := send("short"); status != 400 || code != "context_length_exceeded" || attempts != "0" {
		t.Errorf("short: status %d code %s attempts %q; want an immediate 400", status, code, attempts)
	}
}

// TestCredentials: a provider with several keys spreads requests across
// them, and a key the provider rejects is taken out alone, logged without
// its secret, while every request still succeeds.
func TestCredentials(t *testing.T) {
	fleet := sim.New("up", 1, []sim.Model{{Name: "ok", OutputTokens: 4}}).Handler()
	var mu sync.Mutex
	seen := map[string]int{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		seen[key]++
		mu.Unlock()
		if key == "sk-revoked-SECRET" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"message":"Incorrect API key provided: sk-revoked-SECRET","type":"invalid_request_error","code":"invalid_api_key"}}`)
			return
		}
		fleet.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf(`
store: sqlite:%s
master_key: %s
providers:
  - {name: spread, type: openai, base_url: %s/v1, api_keys: [sk-one-SECRET, sk-two-SECRET], models: [ok]}
  - {name: mixed, type: openai, base_url: %s/v1, api_keys: [sk-revoked-SECRET, sk-good-SECRET], models: [ok]}
`, filepath.Join(t.TempDir(), "t.db"), testKey, up.URL, up.URL))
	for i := 0; i < 20; i++ {
		for _, model := range []string{"spread/ok", "mixed/ok"} {
			if status, complete, _, _ := oneRequest(t, http.DefaultClient, g.URL, testKey, model, i%2 == 0, i); status != 200 || !complete {
				t.Fatalf("%s request %d: %d", model, i, status)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["sk-one-SECRET"] < 5 || seen["sk-two-SECRET"] < 5 {
		t.Errorf("requests were not spread across the keys: %v", seen)
	}
	if seen["sk-revoked-SECRET"] > 2 {
		t.Errorf("the rejected key was tried %d times; it should be taken out after its first 401", seen["sk-revoked-SECRET"])
	}
	logs := g.stderr.String()
	if !strings.Contains(logs, `"reason":"credential rejected"`) || strings.Contains(logs, "SECRET") {
		t.Errorf("want the rejection logged without the key; log:\n%s", logs)
	}
}

// TestResume: with resume on, a text stream cut after content continues on
// the next target, and the joined text is exactly the whole answer: no gap,
// no repeat. Without resume the same cut ends in an error event.
func TestResume(t *testing.T) {
	cut := simUpstream(t, sim.Model{Name: "x", OutputTokens: 30, Fault: sim.Fault{Kind: sim.FaultCut, AfterChunks: 12}})
	whole := simUpstream(t, sim.Model{Name: "x", OutputTokens: 30})
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
	g := startGateway(t, fmt.Sprintf(`
store: %q
master_key: %s
providers:
  - {name: cut, type: openai, base_url: %s/v1, api_key: k}
  - {name: whole, type: openai, base_url: %s/v1, api_key: k}
models:
  - {name: resumed, targets: [cut/x, whole/x], resume: true}
  - {name: plain, targets: [cut/x, whole/x]}
`, dsn, testKey, cut.URL, whole.URL))
	const question = `[{"role":"user","content":"tell me about tides"}]`
	// The whole answer, as the second target gives it unbroken.
	req, _ := http.NewRequest(http.MethodPost, whole.URL+"/v1/chat/completions", strings.NewReader(`{"model":"x","messages":`+question+`}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var direct struct {
		Choices []struct{ Message struct{ Content string } }
	}
	json.NewDecoder(resp.Body).Decode(&direct)
	resp.Body.Close()
	want := direct.Choices[0].Message.Content

	stream := func(model string) (text string, done bool, errs int, resumed int) {
		resp := postChat(t, g.URL, `{"model":"`+model+`","stream":true,"messages":`+question+`}`)
		defer resp.Body.Close()
		r := readSSE(resp.Body)
		return r.text, r.done, r.errors, r.resumed
	}
	text, done, errs, resumed := stream("resumed")
	if text != want || !done || errs != 0 || resumed != 1 {
		t.Errorf("resumed stream: done %v, errors %d, resumed %d\n got: %q\nwant: %q", done, errs, resumed, text, want)
	}
	text, done, errs, _ = stream("plain")
	if done || errs != 1 || !strings.HasPrefix(want, text) || text == want {
		t.Errorf("without resume: done %v errors %d text %q", done, errs, text)
	}
}

// TestCapabilityPlans: targets declared without tools or vision are skipped
// for requests that need them; when none is able, a 400 comes at once.
func TestCapabilityPlans(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(`
store: sqlite:%s
master_key: %s
providers:
  - name: sim
    type: sim
    sim: {models: [{name: plain, output_tokens: 4}, {name: full, output_tokens: 4}]}
    unsupported: {plain: [tools, vision]}
models:
  - {name: m, targets: [sim/plain, sim/full]}
  - {name: only-plain, targets: [sim/plain]}
`, filepath.Join(t.TempDir(), "t.db"), testKey))
	send := func(model, extra string) (int, string, string) {
		resp := postChat(t, g.URL, `{"model":"`+model+`",`+extra+`}`)
		defer resp.Body.Close()
		var e struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, resp.Header.Get("x-tidegate-route"), e.Error.Code
	}
	text := `"messages":[{"role":"user","content":"hi"}]`
	tools := `"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`
	image := `"messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]`
	if status, route, _ := send("m", text); status != 200 || route != "sim/plain" {
		t.Errorf("text: %d via %s; want the first target", status, route)
	}
	for name, body := range map[string]string{"tools": tools, "vision": image} {
		if status, route, _ := send("m", body); status != 200 || route != "sim/full" {
			t.Errorf("%s: %d via %s; want the able target", name, status, route)
		}
		if status, _, code := send("only-plain", body); status != 400 || code != "unsupported_capability" {
			t.Errorf("%s on a route with no able target: %d %s", name, status, code)
		}
	}
}
