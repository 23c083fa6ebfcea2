package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Process is a helper process the paced bench measures (an upstream).
type Process struct {
	URL  string // base URL, without /v1
	PID  int
	Stop func()
}

// UpstreamFunc starts a sim upstream as its own process, its models paced
// as given (ttft, tokens per second, output tokens), so its CPU is read
// apart from the load tool's and the gateway's.
type UpstreamFunc func(ctx context.Context, ttft time.Duration, tps float64, tokens int) (*Process, error)

// holdTPS paces the held streams: slow enough for 1,000 to be cheap, busy
// enough that their garbage brings the heap to the GC's goal within a hold.
const holdTPS = 5

// RelayFunc starts FloorRelay in front of an upstream, as its own process.
type RelayFunc func(ctx context.Context, upstream string) (*Process, error)

// PacedOptions tune a paced-stream run: every answer streams like a real
// model, its first token after TTFT and the next ones TBT apart.
type PacedOptions struct {
	Rate     int // streams started per second
	Duration time.Duration
	Warmup   time.Duration
	TTFT     time.Duration
	TBT      time.Duration
	Tokens   int
	// Streams held open (slow ones, holdTPS tokens a second) for the
	// memory figure, over HoldFor; 0 skips it.
	Streams int
	HoldFor time.Duration
	Dir     string

	Start    StartFunc
	Upstream UpstreamFunc
	// Floor, when set, adds a phase through a bare relay (FloorRelay): the
	// CPU any relay spends on these streams here, next to tidegate's.
	Floor RelayFunc

	MasterKey                        bool
	NoRequestLog, NoMetrics, Tracing bool
}

// PacedPhase is one measured series of paced streams.
type PacedPhase struct {
	Name     string
	Sent     int
	Errors   int
	Chunks   int64           // data events read by the load tool, [DONE] included
	TTFC     []time.Duration // sorted; from due time to the first data event
	Total    []time.Duration // sorted; to the body's end
	Gateway  time.Duration   // CPU of each process over the phase (Gateway: the relay in the middle)
	Upstream time.Duration
	Load     time.Duration
	PeakOpen int64          // most streams open at once
	RSS      int64          // gateway RSS at the sample with the most streams open
	RSSOpen  int64          // streams open at that sample
	Why      map[string]int // errors by message
}

func (p *PacedPhase) ok() int { return p.Sent - p.Errors }

// PerStream is a CPU time divided by the phase's completed streams.
func (p *PacedPhase) PerStream(cpu time.Duration) time.Duration {
	if p.ok() == 0 {
		return 0
	}
	return cpu / time.Duration(p.ok())
}

// PacedReport is a whole paced run.
type PacedReport struct {
	Machine    string
	Opts       PacedOptions
	Auth       string
	Observe    string
	Direct     PacedPhase
	Floor      *PacedPhase // through the bare relay, when measured
	Gateway    PacedPhase
	RSSStreams int64 // as the held streams are all open
	RSSHeld    int64 // highest over HoldFor as they go on
	StreamsOK  int
}

// RunPaced measures paced streams straight to the upstream and through the
// gateway, in one run, with the gateway, the upstream and the load tool
// (this process) each their own process.
func RunPaced(ctx context.Context, o PacedOptions) (*PacedReport, error) {
	if o.Rate < 1 || o.Duration <= 0 || o.Tokens < 1 || o.TBT <= 0 {
		return nil, fmt.Errorf("rate, duration, tokens and time between tokens must be positive")
	}
	rep := &PacedReport{Machine: machine(), Opts: o}
	up, err := o.Upstream(ctx, o.TTFT, float64(time.Second)/float64(o.TBT), o.Tokens)
	if err != nil {
		return nil, fmt.Errorf("starting the upstream: %w", err)
	}
	defer up.Stop()
	hold, err := o.Upstream(ctx, 0, holdTPS, 10000) // five tokens a second: streams that stay open, and go on
	if err != nil {
		return nil, fmt.Errorf("starting the holding upstream: %w", err)
	}
	defer hold.Stop()

	observe := fmt.Sprintf("observe:\n  request_log: {disabled: %v}\n  metrics: {disabled: %v}\n", o.NoRequestLog, o.NoMetrics)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
store: sqlite:%s/bench.db
master_key: bench-key
log_level: info
server: {shutdown_grace: 2s, max_conns_per_ip: 100000}   # the load tool is one client address
providers:
  - {name: up, type: openai, base_url: %s/v1, api_key: sk-bench, models: [fast]}
  - {name: hold, type: openai, base_url: %s/v1, api_key: sk-bench, models: [fast]}
prices:
  - {model: up/fast, currency: CNY, input: 1, output: 2}
  - {model: hold/fast, currency: CNY, input: 1, output: 2}
%s`, o.Dir, up.URL, hold.URL, observe)
	gw, err := startOn(ctx, o.Start, o.Dir, cfg)
	if err != nil {
		return nil, err
	}
	defer gw.Stop()
	rep.Observe = fmt.Sprintf("request log %s, metrics %s", onOff(!o.NoRequestLog), onOff(!o.NoMetrics))
	key, auth, err := benchAuth(ctx, gw.URL, o.MasterKey)
	if err != nil {
		return nil, err
	}
	rep.Auth = auth

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 8192, MaxIdleConnsPerHost: 8192, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	body := func(model string) string {
		return fmt.Sprintf(`{"model":%q,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"Tell me about the tide gate and how it opens at dawn."}]}`, model)
	}
	type phase struct {
		p    *PacedPhase
		name string
		url  string
		body string
		auth string
		mid  *Gateway // the relay whose CPU and RSS are read
	}
	phases := []phase{{&rep.Direct, "direct", up.URL, body("fast"), "sk-bench", gw}}
	if o.Floor != nil {
		relay, err := o.Floor(ctx, up.URL)
		if err != nil {
			return nil, fmt.Errorf("starting the bare relay: %w", err)
		}
		defer relay.Stop()
		rep.Floor = &PacedPhase{}
		phases = append(phases, phase{rep.Floor, "through a bare relay (floor)", relay.URL, body("fast"), "sk-bench", &Gateway{URL: relay.URL, PID: relay.PID}})
	}
	phases = append(phases, phase{&rep.Gateway, "through tidegate", gw.URL, body("up/fast"), key, gw})
	for _, ph := range phases {
		ph.p.Name = ph.name
		pacedLoop(ctx, client, ph.url, ph.body, ph.auth, o.Rate, o.Warmup, &PacedPhase{}, nil)
		g0, u0, l0 := cpuTime(ph.mid.PID), cpuTime(up.PID), cpuTime(os.Getpid())
		pacedLoop(ctx, client, ph.url, ph.body, ph.auth, o.Rate, o.Duration, ph.p, ph.mid)
		ph.p.Gateway, ph.p.Upstream, ph.p.Load = cpuTime(ph.mid.PID)-g0, cpuTime(up.PID)-u0, cpuTime(os.Getpid())-l0
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	client.CloseIdleConnections()
	if o.Streams > 0 {
		// The memory figure is a fresh gateway's (same store, same key): RSS
		// seldom shrinks, so after the load phases it would show their peak.
		gw.Stop()
		if gw, err = startOn(ctx, o.Start, o.Dir, cfg); err != nil { // the same config, written again
			return nil, err
		}
		defer gw.Stop()
		rep.RSSStreams, rep.RSSHeld, rep.StreamsOK = holdStreams(ctx, gw, key, "hold/fast", o.Streams, o.HoldFor)
	}
	return rep, ctx.Err()
}

// pacedLoop starts rate streams a second for d, each at its due time, reads
// each to its end, and samples the gateway's RSS (when gw is set) as it goes.
func pacedLoop(ctx context.Context, client *http.Client, url, body, auth string, rate int, d time.Duration, out *PacedPhase, gw *Gateway) {
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	type result struct {
		ttfc, total time.Duration
		chunks      int64
		err         error
	}
	results := make([]result, n)
	var open atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // RSS while the streams run
		defer close(sampled)
		if gw == nil {
			return
		}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				// The sample with the most streams open (RSS seldom shrinks:
				// its highest sample would come after the streams ended).
				if n := open.Load(); n > out.RSSOpen {
					out.RSS, out.RSSOpen = rss(gw.PID), n
				}
			}
		}
	}()
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
			now := open.Add(1)
			for {
				peak := atomic.LoadInt64(&out.PeakOpen)
				if now <= peak || atomic.CompareAndSwapInt64(&out.PeakOpen, peak, now) {
					break
				}
			}
			ttfc, total, chunks, err := pacedCall(ctx, client, url, body, auth, due)
			open.Add(-1)
			results[i] = result{ttfc, total, chunks, err}
		}(i, due)
	}
	wg.Wait()
	close(stop)
	<-sampled
	for _, r := range results {
		out.Sent++
		if r.err != nil {
			out.Errors++
			if out.Why == nil {
				out.Why = map[string]int{}
			}
			out.Why[r.err.Error()]++
			continue
		}
		out.Chunks += r.chunks
		out.TTFC = append(out.TTFC, r.ttfc)
		out.Total = append(out.Total, r.total)
	}
	for _, l := range [][]time.Duration{out.TTFC, out.Total} {
		sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
	}
}

// pacedCall reads one stream to its end, counting its data events.
func pacedCall(ctx context.Context, client *http.Client, url, body, auth string, due time.Time) (ttfc, total time.Duration, chunks int64, err error) {
	resp, err := postChat(ctx, client, url, body, auth)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 4<<10)
	done := false
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("data:")) {
			if chunks == 0 {
				ttfc = time.Since(due)
			}
			chunks++
			done = done || bytes.HasPrefix(line, []byte("data: [DONE]"))
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return 0, 0, 0, err
		}
	}
	if !done {
		return 0, 0, 0, fmt.Errorf("stream did not complete")
	}
	return ttfc, time.Since(due), chunks, nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// Print writes the paced report as Markdown.
func (r *PacedReport) Print(w io.Writer) {
	o := r.Opts
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "paced streams: %d started a second for %s; first token after %s, then one every %s, %d tokens\n",
		o.Rate, o.Duration, o.TTFT, o.TBT, o.Tokens)
	fmt.Fprintf(w, "load tool, upstream (tidegate sim) and gateway are three processes on the same cores\n")
	fmt.Fprintf(w, "through tidegate with %s; ledger on; %s\n\n", r.Auth, r.Observe)
	fmt.Fprintln(w, "| phase | streams | errors | chunks/stream | TTFC p50 | TTFC p99 | end p50 | end p99 | peak open | relay CPU/stream | relay CPU/chunk | upstream CPU/stream | load tool CPU/stream |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	phases := []*PacedPhase{&r.Direct}
	if r.Floor != nil {
		phases = append(phases, r.Floor)
	}
	phases = append(phases, &r.Gateway)
	for _, p := range phases {
		gwStream, gwChunk := "—", "—"
		perChunk := 0.0
		if p.ok() > 0 {
			perChunk = float64(p.Chunks) / float64(p.ok())
		}
		if p != &r.Direct && p.Chunks > 0 {
			gwStream = us(p.PerStream(p.Gateway))
			gwChunk = fmt.Sprintf("%.1f µs", float64(p.Gateway.Microseconds())/float64(p.Chunks))
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.1f | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", p.Name, p.Sent, p.Errors, perChunk,
			ms(pct(p.TTFC, 0.5)), ms(pct(p.TTFC, 0.99)), ms(pct(p.Total, 0.5)), ms(pct(p.Total, 0.99)), p.PeakOpen,
			gwStream, gwChunk, us(p.PerStream(p.Upstream)), us(p.PerStream(p.Load)))
	}
	g, d := &r.Gateway, &r.Direct
	fmt.Fprintln(w)
	for _, p := range phases {
		if l := whyLine(p.Name, p.Why); l != "" {
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintf(w, "added time to first chunk: p50 %s, p99 %s; added to the end: p50 %s, p99 %s\n",
		ms(pct(g.TTFC, 0.5)-pct(d.TTFC, 0.5)), ms(pct(g.TTFC, 0.99)-pct(d.TTFC, 0.99)),
		ms(pct(g.Total, 0.5)-pct(d.Total, 0.5)), ms(pct(g.Total, 0.99)-pct(d.Total, 0.99)))
	if up := g.PerStream(g.Upstream); up > 0 {
		fmt.Fprintf(w, "gateway CPU per stream ÷ upstream CPU per stream (same streams): %.2f (target ≤ 1)\n",
			float64(g.PerStream(g.Gateway))/float64(up))
	}
	if f := r.Floor; f != nil && f.ok() > 0 && g.ok() > 0 {
		if up := f.PerStream(f.Upstream); up > 0 {
			fmt.Fprintf(w, "bare relay CPU per stream ÷ upstream CPU per stream: %.2f; tidegate ÷ bare relay: %.2f (tidegate's own work over the I/O floor: %s a stream)\n",
				float64(f.PerStream(f.Gateway))/float64(up), float64(g.PerStream(g.Gateway))/float64(f.PerStream(f.Gateway)),
				us(g.PerStream(g.Gateway)-f.PerStream(f.Gateway)))
		}
	}
	fmt.Fprintf(w, "gateway RSS under load: %.1f MB with %d streams open\n", float64(g.RSS)/1e6, g.RSSOpen)
	if o.Streams > 0 {
		fmt.Fprintf(w, "a fresh gateway's RSS with %d of %d streams open: %.1f MB as they opened, %.1f MB highest over %s of %d tokens a second each (target ≤ 100 MB at 1,000)\n",
			r.StreamsOK, o.Streams, float64(r.RSSStreams)/1e6, float64(r.RSSHeld)/1e6, o.HoldFor, holdTPS)
	}
}
