// Package bench measures tidegate's overhead: the same calls sent straight to
// an upstream and through the gateway, in one run, open-loop (each request
// is timed from when it was due, so a stall is never hidden by the load
// tool waiting for it: no coordinated omission).
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// Gateway is a running gateway under test.
type Gateway struct {
	URL  string
	PID  int // the process to measure; the bench's own when in-process
	Stop func()
	// Ready is how long the gateway took from start to serving.
	Ready time.Duration
}

// StartFunc starts a gateway with a config file.
type StartFunc func(ctx context.Context, configPath string) (*Gateway, error)

// startOn writes cfg as dir/bench.yaml and starts a gateway on it.
func startOn(ctx context.Context, start StartFunc, dir, cfg string) (*Gateway, error) {
	path := dir + "/bench.yaml"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return start(ctx, path)
}

// Options tune a run.
type Options struct {
	Rate     int           // requests per second, each phase
	Duration time.Duration // per phase
	Warmup   time.Duration
	Streams  int // concurrent streams held open for the memory figure
	// HoldFor keeps the streams open this much longer after the memory
	// figure is read (to take a heap profile with --pprof).
	HoldFor time.Duration
	Tokens  int // output tokens per answer
	Start   StartFunc
	Dir     string // for the config and the store
	// MasterKey sends the gateway phases with the master key instead of a
	// virtual key with a budget (which adds limits, a reservation and a
	// settlement to every request).
	MasterKey bool
	// What the gateway records and exports while measured: the request log
	// and metrics are on by default, as in production; Tracing exports every
	// request's spans to an OTLP sink in the bench process.
	NoRequestLog, NoMetrics, Tracing bool
}

// Phase is one measured series.
type Phase struct {
	Name      string
	Sent      int
	Errors    int
	Latencies []time.Duration // sorted; time to last byte
	TTFB      []time.Duration // sorted; streams only
	Done      []time.Duration // sorted; streams only: time to the [DONE] event, where SDK clients stop reading
	CPU       time.Duration   // the gateway's CPU time during the phase
	Why       map[string]int  // errors by message
}

// noteError counts an error by its message (a status, a cut stream).
func (p *Phase) noteError(err error) {
	if p.Why == nil {
		p.Why = map[string]int{}
	}
	p.Why[err.Error()]++
}

// whyLine says what the errors of a phase were, most frequent first.
func whyLine(name string, why map[string]int) string {
	if len(why) == 0 {
		return ""
	}
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range why {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(a, b int) bool { return all[a].v > all[b].v })
	var b strings.Builder
	fmt.Fprintf(&b, "%s errors:", name)
	for i, e := range all {
		if i == 5 {
			break
		}
		fmt.Fprintf(&b, " %d × %s;", e.v, e.k)
	}
	return b.String()
}

func (p *Phase) Pct(q float64) time.Duration { return pct(p.Latencies, q) }

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Report is a whole run.
type Report struct {
	Machine    string
	Rate       int
	Duration   time.Duration
	Startup    time.Duration
	Direct     Phase
	Gateway    Phase
	DirectSSE  Phase
	GatewaySSE Phase
	RSSIdle    int64 // bytes
	RSSStreams int64 // bytes, with Streams streams open
	Streams    int
	StreamsOK  int
	Auth       string // what the gateway phases authenticated as
	Observe    string // what the gateway recorded and exported
}

// Run performs the whole benchmark.
func Run(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{Machine: machine(), Rate: o.Rate, Duration: o.Duration, Streams: o.Streams}

	// The upstream: the sim fleet over HTTP, unpaced, in this process
	// (sharing the cores with the load tool, as a co-located upstream would).
	fleet := sim.New("upstream", 1, []sim.Model{
		{Name: "bench", OutputTokens: o.Tokens},
		{Name: "hold", OutputTokens: 1000, TokensPerSecond: 2},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	upstream := &http.Server{Handler: fleet.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go upstream.Serve(ln)
	defer upstream.Close()
	upURL := "http://" + ln.Addr().String()
	observe := fmt.Sprintf("observe:\n  request_log: {disabled: %v}\n  metrics: {disabled: %v}\n", o.NoRequestLog, o.NoMetrics)
	if o.Tracing {
		sink, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		collector := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		})}
		go collector.Serve(sink)
		defer collector.Close()
		observe += fmt.Sprintf("  tracing: {endpoint: http://%s}\n", sink.Addr())
	}

	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
store: sqlite:%s/bench.db
master_key: bench-key
log_level: info
server: {shutdown_grace: 2s, max_conns_per_ip: 100000}   # the load tool is one client address
providers:
  - name: up
    type: openai
    base_url: %s/v1
    api_key: sk-bench
    models: [bench, hold]
prices:
  - {model: up/bench, currency: CNY, input: 1, output: 2}
  - {model: up/hold, currency: CNY, input: 1, output: 2}
%s`, o.Dir, upURL, observe)
	gw, err := startOn(ctx, o.Start, o.Dir, cfg)
	if err != nil {
		return nil, err
	}
	defer gw.Stop()
	rep.Startup = gw.Ready
	rep.Observe = fmt.Sprintf("request log %s, metrics %s, tracing %s", onOff(!o.NoRequestLog), onOff(!o.NoMetrics), onOff(o.Tracing))
	gwKey, auth, err := benchAuth(ctx, gw.URL, o.MasterKey)
	if err != nil {
		return nil, err
	}
	rep.Auth = auth
	if !o.MasterKey {
		rep.Auth += " (limits, reservation, settlement and ledger on every request)"
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	body := func(model string, stream bool) string {
		return fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"Tell me about the tide gate and how it opens at dawn."}]}`, model, stream)
	}
	targets := []struct {
		phase  *Phase
		url    string
		body   string
		auth   string
		stream bool
	}{
		{&rep.Direct, upURL, body("bench", false), "sk-bench", false},
		{&rep.Gateway, gw.URL, body("up/bench", false), gwKey, false},
		{&rep.DirectSSE, upURL, body("bench", true), "sk-bench", true},
		{&rep.GatewaySSE, gw.URL, body("up/bench", true), gwKey, true},
	}
	names := []string{"direct", "tidegate", "direct stream", "tidegate stream"}
	for i, t := range targets {
		t.phase.Name = names[i]
		// Warm up connections and code paths, then measure.
		openLoop(ctx, client, t.url, t.body, t.auth, t.stream, o.Rate, o.Warmup, &Phase{})
		cpu0 := cpuTime(gw.PID)
		openLoop(ctx, client, t.url, t.body, t.auth, t.stream, o.Rate, o.Duration, t.phase)
		t.phase.CPU = cpuTime(gw.PID) - cpu0
	}
	client.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	rep.RSSIdle = rss(gw.PID)
	rep.RSSStreams, _, rep.StreamsOK = holdStreams(ctx, gw, gwKey, "up/hold", o.Streams, o.HoldFor)
	return rep, ctx.Err()
}

// createBenchKey makes the virtual key the gateway phases use.
func createBenchKey(ctx context.Context, url string) (string, error) {
	body := `{"name":"bench","project":"bench","budget":{"amount":1000000,"currency":"CNY","period":"month"}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/admin/keys", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer bench-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Key == "" {
		return "", fmt.Errorf("creating the bench key: status %d", resp.StatusCode)
	}
	return out.Key, nil
}

// openLoop sends rate requests a second for d, each at its due time.
func openLoop(ctx context.Context, client *http.Client, url, body, auth string, stream bool, rate int, d time.Duration, out *Phase) {
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	type result struct {
		lat, ttfb, done time.Duration
		err             error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			lat, ttfb, done, err := call(ctx, client, url, body, auth, stream, due)
			results[i] = result{lat, ttfb, done, err}
		}(i, due)
	}
	wg.Wait()
	for _, r := range results {
		out.Sent++
		if r.err != nil {
			out.Errors++
			out.noteError(r.err)
			continue
		}
		out.Latencies = append(out.Latencies, r.lat)
		if stream {
			out.TTFB = append(out.TTFB, r.ttfb)
			out.Done = append(out.Done, r.done)
		}
	}
	for _, l := range [][]time.Duration{out.Latencies, out.TTFB, out.Done} {
		sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
	}
}

// call times one request from its due time: to its last byte, and for
// streams to its first byte and to its [DONE] event.
func call(ctx context.Context, client *http.Client, url, body, auth string, stream bool, due time.Time) (lat, ttfb, done time.Duration, err error) {
	resp, err := postChat(ctx, client, url, body, auth)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if !stream {
		if _, err := io.Copy(io.Discard, br); err != nil {
			return 0, 0, 0, err
		}
		return time.Since(due), 0, 0, nil
	}
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if first && len(line) > 0 {
			ttfb, first = time.Since(due), false
		}
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			done = time.Since(due)
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return 0, 0, 0, err
		}
	}
	if done == 0 {
		return 0, 0, 0, fmt.Errorf("stream did not complete")
	}
	return time.Since(due), ttfb, done, nil
}

// statusError names a refused request by its status and error code.
// postChat posts body to the chat endpoint with auth; a non-200 answer is
// read and closed, and returned as an error naming its code.
func postChat(ctx context.Context, client *http.Client, url, body, auth string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp, nil
}

func statusError(resp *http.Response) error {
	var body struct {
		Error struct {
			Code any `json:"code"`
		} `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	_, _ = io.Copy(io.Discard, resp.Body)
	return fmt.Errorf("status %d %v", resp.StatusCode, body.Error.Code)
}

// benchAuth is the key the gateway phases use and how the report names it:
// the master key, or a fresh virtual key with a monthly budget.
func benchAuth(ctx context.Context, gatewayURL string, master bool) (key, auth string, err error) {
	if master {
		return "bench-key", "the master key (ledger on, no budget)", nil
	}
	if key, err = createBenchKey(ctx, gatewayURL); err != nil {
		return "", "", err
	}
	return key, "a virtual key with a monthly budget", nil
}

// holdStreams opens n slow streams through the gateway, waits for each to
// start, and reads the gateway's RSS once all are open and, highest, over
// holdFor while they go on.
func holdStreams(ctx context.Context, gw *Gateway, key, model string, n int, holdFor time.Duration) (opened, highest int64, started int) {
	if n <= 0 {
		return 0, 0, 0
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 10, MaxConnsPerHost: 0}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	var mu sync.Mutex
	body := `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"hold the line"}]}`
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 1)
			if _, err := resp.Body.Read(buf); err != nil {
				return
			}
			mu.Lock()
			started++
			mu.Unlock()
			<-ctx.Done()
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		s := started
		mu.Unlock()
		if s >= n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the open streams settle
	opened = rss(gw.PID)
	// Over the hold, the streams' chunks leave garbage and the heap grows
	// toward the GC's goal before a collection: the highest sample is the
	// figure a gateway holding these streams for long would show.
	highest = opened
	for end := time.Now().Add(holdFor); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(250 * time.Millisecond) {
		highest = max(highest, rss(gw.PID))
	}
	mu.Lock()
	n = started
	mu.Unlock()
	cancel()
	wg.Wait()
	return opened, highest, n
}

// cpuTime is a process's user+system CPU time, from /proc.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// rss is a process's resident set size in bytes, from /proc.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", model, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
