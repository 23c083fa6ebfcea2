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
