// Package drill rehearses outages: it runs scripted fault scenarios against
// the sim fleet through a real tidegate and reports what a client saw —
// success rate, attempts per request, latency — and what the breakers did.
package drill

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// Fault modes of a drill upstream.
const (
	ModeOK        = "ok"
	ModeDown      = "down"      // 503 for every call
	ModeFlapping  = "flapping"  // half the calls fail with 500
	ModeSlow      = "slow"      // 1.5 s before the first token
	ModeStalling  = "stalling"  // headers, then nothing
	ModeRateLimit = "ratelimit" // 429 with Retry-After: 5
)

// Upstream is an OpenAI-compatible sim upstream whose behaviour can be switched.
type Upstream struct {
	fleet http.Handler
	slow  http.Handler // the same model, 1.5 s to its first token
	mode  atomic.Value // string
	hits  atomic.Int64
	rng   *rand.Rand
	mu    sync.Mutex
}

func NewUpstream(seed uint64) *Upstream {
	model := sim.Model{Name: "chat", OutputTokens: 24, TokensPerSecond: 400}
	slow := model
	slow.TTFT = 1500 * time.Millisecond
	u := &Upstream{fleet: sim.New("drill", seed, []sim.Model{model}).Handler(), slow: sim.New("drill", seed, []sim.Model{slow}).Handler(),
		rng: rand.New(rand.NewPCG(seed, 7))}
	u.mode.Store(ModeOK)
	return u
}

func (u *Upstream) Set(mode string) { u.mode.Store(mode) }
func (u *Upstream) Hits() int64     { return u.hits.Load() }

func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	fail := func(status int, retryAfter string) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"drill fault","type":"server_error","code":null}}`)
	}
	switch u.mode.Load().(string) {
	case ModeDown:
		fail(http.StatusServiceUnavailable, "")
		return
	case ModeRateLimit:
		fail(http.StatusTooManyRequests, "5")
		return
	case ModeFlapping:
		u.mu.Lock()
		bad := u.rng.IntN(2) == 0
		u.mu.Unlock()
		if bad {
			fail(http.StatusInternalServerError, "")
			return
		}
	case ModeSlow:
		// The model is slow, not the path to it: the head comes at once,
		// the first token 1.5 s later (a whole answer reports it as its
		// processing time).
		u.slow.ServeHTTP(w, r)
		return
	case ModeStalling:
		if !strings.Contains(peekBody(r), `"stream":true`) {
			<-r.Context().Done() // a whole answer that never comes: no headers either
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	u.fleet.ServeHTTP(w, r)
}

// peekBody reads the request body and puts it back for the fleet.
func peekBody(r *http.Request) string {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	return string(b)
}

// Scenario is one rehearsal: which upstreams misbehave, and how.
type Scenario struct {
	Name  string
	Desc  string
	Modes [3]string // primary, secondary, tertiary
	// Recover, when set, restores every upstream after this long.
	Recover time.Duration
}

// Scenarios are the drills a team can run.
var Scenarios = []Scenario{
	{Name: "baseline", Desc: "every provider healthy", Modes: [3]string{ModeOK, ModeOK, ModeOK}},
	{Name: "down", Desc: "the primary provider answers 503", Modes: [3]string{ModeDown, ModeOK, ModeOK}},
	{Name: "flapping", Desc: "the primary fails half its calls", Modes: [3]string{ModeFlapping, ModeOK, ModeOK}},
	{Name: "slow", Desc: "the primary takes 1.5 s to its first token", Modes: [3]string{ModeSlow, ModeOK, ModeOK}},
	{Name: "stalling", Desc: "the primary accepts calls and sends nothing", Modes: [3]string{ModeStalling, ModeOK, ModeOK}},
	{Name: "ratelimit", Desc: "the primary rate-limits with Retry-After: 5", Modes: [3]string{ModeRateLimit, ModeOK, ModeOK}},
	{Name: "outage", Desc: "every provider down for 2 s, then back", Modes: [3]string{ModeDown, ModeDown, ModeDown}, Recover: 2 * time.Second},
}

// Options tune a drill.
type Options struct {
	Requests    int // per scenario
	Concurrency int
	Stream      bool
	// HedgeAfter turns hedging on for the drill's model.
	HedgeAfter time.Duration
	// LatencyOrder orders the drill's targets by learned time to first token.
	LatencyOrder bool
	// Start runs a gateway with the config text and returns its URL, the
	// master key, a reader of its log, and a stop function.
	Start func(ctx context.Context, config string) (url string, logs func() string, stop func(), err error)
	Dir   string
}

// Result is what one scenario came to.
type Result struct {
	Scenario   Scenario
	Requests   int
	OK         int
	Attempts   int
	Statuses   map[int]int
	P50, P99   time.Duration
	Ejections  int
	Cooldowns  int
	Readmitted int
	Upstream   [3]int64 // calls each provider received
	// Verdicts counts the requests' verdicts, from the gateway's log.
	Verdicts map[string]int
}

// Run runs each named scenario (all when names is empty) on a fresh gateway.
func Run(ctx context.Context, o Options, names []string, out io.Writer) ([]Result, error) {
	var results []Result
	for _, sc := range Scenarios {
		if len(names) > 0 && !contains(names, sc.Name) {
			continue
		}
		r, err := runOne(ctx, o, sc)
		if err != nil {
			return results, fmt.Errorf("%s: %w", sc.Name, err)
		}
		results = append(results, r)
		if out != nil {
			r.Print(out)
		}
	}
	return results, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

const masterKey = "drill-master-key"

func runOne(ctx context.Context, o Options, sc Scenario) (Result, error) {
	ups := [3]*Upstream{NewUpstream(1), NewUpstream(2), NewUpstream(3)}
	var urls [3]string
	for i, u := range ups {
		u.Set(sc.Modes[i])
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Result{}, err
		}
		srv := &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		urls[i] = "http://" + ln.Addr().String()
	}
	config := fmt.Sprintf(`listen: 127.0.0.1:0
store: sqlite:%s/drill-%s.db
master_key: %s
log_level: info
reliability: {first_token_timeout: 500ms, base_ejection: 1s, max_ejection: 4s}
providers:
  - {name: primary, type: openai, base_url: %s/v1, api_key: k, timeout: 2s}
  - {name: secondary, type: openai, base_url: %s/v1, api_key: k, timeout: 2s}
  - {name: tertiary, type: openai, base_url: %s/v1, api_key: k, timeout: 2s}
models:
  - {name: chat, targets: [primary/chat, secondary/chat, tertiary/chat], hedge_after: %s, order: %s}
`, o.Dir, sc.Name, masterKey, urls[0], urls[1], urls[2], o.HedgeAfter, order(o.LatencyOrder))
	url, logs, stop, err := o.Start(ctx, config)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	if sc.Recover > 0 {
		t := time.AfterFunc(sc.Recover, func() {
			for _, u := range ups {
				u.Set(ModeOK)
			}
		})
		defer t.Stop()
	}

	res := Result{Scenario: sc, Requests: o.Requests, Statuses: map[int]int{}, Verdicts: map[string]int{}}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}}
	defer client.CloseIdleConnections()
	lat := make([]time.Duration, o.Requests)
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	// Spread the requests: an outage drill is about time, and one with a
	// recovery must span it.
	interval := 10 * time.Millisecond
	if sc.Recover > 0 {
		interval = 3 * sc.Recover * time.Duration(o.Concurrency) / time.Duration(o.Requests)
	}
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.Requests || ctx.Err() != nil {
					return
				}
				start := time.Now()
				status, attempts, ok := call(ctx, client, url, o.Stream, i)
				mu.Lock()
				res.Statuses[status]++
				res.Attempts += attempts
				if ok {
					res.OK++
				}
				lat[i] = time.Since(start)
				mu.Unlock()
				time.Sleep(interval)
			}
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	res.P50, res.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	for i, u := range ups {
		res.Upstream[i] = u.Hits()
	}
	for _, line := range strings.Split(logs(), "\n") {
		if strings.Contains(line, `"msg":"request"`) {
			var e struct{ Path, Verdict string }
			if json.Unmarshal([]byte(line), &e) == nil && e.Path == "/v1/chat/completions" && e.Verdict != "" {
				res.Verdicts[e.Verdict]++
			}
			continue
		}
		if !strings.Contains(line, "target health changed") {
			continue
		}
		var e struct{ State string }
		if json.Unmarshal([]byte(line), &e) == nil {
			switch e.State {
			case "ejected":
				res.Ejections++
			case "cooling":
				res.Cooldowns++
			case "admitted":
				res.Readmitted++
			}
		}
	}
	return res, nil
}

func call(ctx context.Context, client *http.Client, url string, stream bool, i int) (status, attempts int, ok bool) {
	body := fmt.Sprintf(`{"model":"chat","stream":%v,"messages":[{"role":"user","content":"drill %d"}]}`, stream, i)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+masterKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	attempts, _ = strconv.Atoi(resp.Header.Get("x-tidegate-attempts"))
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, attempts, false
	}
	if !stream {
		_, err := io.Copy(io.Discard, resp.Body)
		return 200, attempts, err == nil
	}
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			done = true
		}
	}
	return 200, attempts, done
}

// Print writes one scenario's report.
func (r Result) Print(w io.Writer) {
	codes := make([]int, 0, len(r.Statuses))
	for c := range r.Statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", r.Statuses[c], c))
	}
	fmt.Fprintf(w, "%-9s %s\n", r.Scenario.Name, r.Scenario.Desc)
	fmt.Fprintf(w, "          success %5.1f%%  attempts/request %.2f  p50 %s  p99 %s  answers %s\n",
		100*float64(r.OK)/float64(max(r.Requests, 1)), float64(r.Attempts)/float64(max(r.Requests, 1)),
		r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), strings.Join(parts, " "))
	fmt.Fprintf(w, "          breakers: %d ejections, %d cool-downs, %d re-admissions; upstream calls %d / %d / %d\n",
		r.Ejections, r.Cooldowns, r.Readmitted, r.Upstream[0], r.Upstream[1], r.Upstream[2])
	kinds := make([]string, 0, len(r.Verdicts))
	for k := range r.Verdicts {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		return r.Verdicts[kinds[i]] > r.Verdicts[kinds[j]] || r.Verdicts[kinds[i]] == r.Verdicts[kinds[j]] && kinds[i] < kinds[j]
	})
	verdicts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		verdicts = append(verdicts, fmt.Sprintf("%s %d", k, r.Verdicts[k]))
	}
	fmt.Fprintf(w, "          verdicts: %s (tidegate diagnose REQUEST_ID explains one)\n\n", strings.Join(verdicts, ", "))
}

func order(latency bool) string {
	if latency {
		return "latency"
	}
	return "config"
}
