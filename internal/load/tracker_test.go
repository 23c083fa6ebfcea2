package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/router"
)

var m = router.Target{Provider: "gpu", Model: "m"}

// TestTrackerReadsASimServer: a sim at capacity serving vLLM's names over
// HTTP is read as running, waiting and KV use; its capacity is learned; the
// forecast counts the queue and tidegate's own calls since the scrape.
func TestTrackerReadsASimServer(t *testing.T) {
	fleet := sim.New("gpu", 1, []sim.Model{{Name: "m", Capacity: 2, OutputTokens: 4}})
	srv := httptest.NewServer(fleet.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var streams sync.WaitGroup
	var held []func() error
	var mu sync.Mutex
	for range 3 {
		streams.Go(func() {
			s, err := fleet.ChatCompletionStream(ctx, &llm.ChatRequest{Model: "m", Stream: true,
				Messages: []llm.Message{{Role: "user", Content: llm.TextContent("hi")}}})
			if err == nil {
				mu.Lock()
				held = append(held, s.Close)
				mu.Unlock()
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); fleet.Load("m").Waiting < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no request queued")
		}
	}
	tr := New(Config{Servers: []Server{{Name: "gpu", Kind: VLLM, URL: DefaultURL(VLLM, srv.URL+"/v1"), CostPerHour: 7}}})
	tr.Scrape(ctx)
	got := tr.Snapshot(m)
	want := Load{Running: 2, Waiting: 1, Others: 3, KVCache: 1, Tracked: true, Fresh: true, Capacity: 2} // the three are not tidegate's
	if d := cmp.Diff(want, got, cmpopts.IgnoreFields(Load{}, "ScrapedAt")); d != "" {
		t.Errorf("snapshot (-want +got):\n%s", d)
	}
	// Three at the server, two slots: a new request is second in the
	// queue; with no service time learned, a second each.
	if f := tr.Forecast(m); !f.SelfHosted || f.CostPerHour != 7 || f.TTFT != time.Second {
		t.Errorf("forecast %+v, want self-hosted at 7 CNY/hour, TTFT 1s", f)
	}
	c := tr.Start(m, false)
	if f := tr.Forecast(m); f.TTFT != 1500*time.Millisecond || tr.Snapshot(m).InFlight != 1 {
		t.Errorf("after one more call: forecast %v, in flight %d; want 1.5s, 1", f.TTFT, tr.Snapshot(m).InFlight)
	}
	c.Done(errors.New("gone"))
	c.Done(nil) // once only
	if n := tr.Snapshot(m).InFlight; n != 0 {
		t.Errorf("in flight after done: %d", n)
	}
	if f := tr.Forecast(router.Target{Provider: "openai", Model: "gpt"}); f.SelfHosted {
		t.Error("a hosted target forecast as self-hosted")
	}
	cancel() // the queued request gives up
	streams.Wait()
	for _, c := range held {
		c()
	}
}

type records struct {
	mu  sync.Mutex
	msg []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msg = append(r.msg, rec.Level.String()+" "+rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// TestMetricsStopAnswering: a server whose metrics fail is judged by
// in-flight counts alone, logged once, and once more when they return.
func TestMetricsStopAnswering(t *testing.T) {
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "gone", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("vllm:num_requests_running{model_name=\"m\"} 4\nvllm:num_requests_waiting{model_name=\"m\"} 0\n"))
	}))
	defer srv.Close()
	logs := &records{}
	tr := New(Config{Servers: []Server{{Name: "gpu", Kind: VLLM, URL: srv.URL}}, Logger: slog.New(logs)})
	ctx := context.Background()
	tr.Scrape(ctx)
	if l := tr.Snapshot(m); !l.Fresh || l.Running != 4 {
		t.Fatalf("up: %+v", l)
	}
	down.Store(true)
	c := tr.Start(m, false)
	for range 3 {
		tr.Scrape(ctx)
	}
	if l := tr.Snapshot(m); l.Fresh || l.Running != 0 || l.InFlight != 1 {
		t.Errorf("down: %+v, want in-flight counts alone", l)
	}
	down.Store(false)
	tr.Scrape(ctx)
	tr.Scrape(ctx)
	c.Done(nil)
	want := []string{"WARN load metrics unavailable: judging the server by in-flight counts alone", "INFO load metrics answering again"}
	if d := cmp.Diff(want, logs.msg); d != "" {
		t.Errorf("logs (-want +got):\n%s", d)
	}
}

// TestLearning: time to first token and service time from answered calls,
// the forecast under a queue, and throughput scaled to a full batch.
func TestLearning(t *testing.T) {
	now := time.Unix(1000, 0)
	var counter float64
	tr := New(Config{Servers: []Server{{Name: "gpu", Kind: VLLM, CostPerHour: 36, Pooled: true, Models: []string{"m"},
		Read: func(context.Context) (map[string]Signals, error) {
			return map[string]Signals{"m": {Running: 2, Waiting: 2, HasQueue: true, KVCache: 0.5, HasKV: true, Generated: counter, HasGenerated: true}}, nil
		}}}})
	tr.now = func() time.Time { return now }
	for range 3 {
		c := tr.Start(m, false)
		now = now.Add(100 * time.Millisecond)
		c.FirstToken()
		now = now.Add(400 * time.Millisecond)
		c.Tokens(10)
		c.Done(nil)
	}
	// Six scrapes a second apart, 100 tokens/s at half the KV cache: 200
	// tokens/s with a full batch.
	for range throughputWindow + 1 {
		tr.Scrape(context.Background())
		now = now.Add(time.Second)
		counter += 100
	}
	f := tr.Forecast(m)
	// Running 2 + waiting 2, capacity 2 (it queues at 2): third in the
	// queue, 0.5 s a call over 2 slots, after a 100 ms first token.
	if f.TTFT != 850*time.Millisecond {
		t.Errorf("TTFT %v, want 850ms", f.TTFT)
	}
	if want := 36.0 / 3600 / 200 * 1e6; f.CostPerMTokens < want*0.99 || f.CostPerMTokens > want*1.01 {
		t.Errorf("cost per 1M tokens %v, want %v", f.CostPerMTokens, want)
	}
	reports := tr.Reports()
	// 9 tokens after the first in 400 ms.
	if len(reports) != 1 || reports[0].Share != 1 || reports[0].OnlineTokens != 30 || reports[0].Load.Capacity != 2 || reports[0].DecodeRate != 22.5 {
		t.Errorf("reports %+v", reports)
	}
}

// TestReportsListThePoolsConfiguredTargets: a server's /metrics naming
// models it is not configured with adds no target to the report; a server
// serving any name reports those it was sent; a server outside the pool
// none. Shares count API requests' attempts only, batch items apart.
func TestReportsListThePoolsConfiguredTargets(t *testing.T) {
	read := func(models ...string) func(context.Context) (map[string]Signals, error) {
		return func(context.Context) (map[string]Signals, error) {
			out := map[string]Signals{}
			for _, m := range models {
				out[m] = Signals{Running: 1, HasQueue: true}
			}
			return out, nil
		}
	}
	tr := New(Config{Servers: []Server{
		{Name: "cheap", Kind: VLLM, Pooled: true, Models: []string{"fast"}, Read: read("fast", "max", "tts")},
		{Name: "any", Kind: VLLM, Pooled: true, AnyModel: true, Read: read("a", "b")},
		{Name: "demo", Kind: "sim", Read: read("fast", "whisper")},
	}})
	if !tr.Pooled() {
		t.Error("Pooled() false with pooled servers")
	}
	tr.Scrape(context.Background())
	for _, c := range []struct {
		tg    router.Target
		batch bool
	}{
		{router.Target{Provider: "cheap", Model: "fast"}, false},
		{router.Target{Provider: "cheap", Model: "fast"}, false},
		{router.Target{Provider: "cheap", Model: "fast"}, true},
		{router.Target{Provider: "any", Model: "a"}, false},
		{router.Target{Provider: "demo", Model: "fast"}, false},
	} {
		tr.Start(c.tg, c.batch).Done(nil)
	}
	type row struct {
		Target                string
		Started, BatchStarted int64
		Share                 float64
	}
	var got []row
	for _, r := range tr.Reports() {
		got = append(got, row{r.Target.String(), r.Started, r.BatchStarted, r.Share})
	}
	// Shares are of the pool's three online attempts (demo is tracked
	// for routing, outside the pool).
	want := []row{{"any/a", 1, 0, 1.0 / 3}, {"cheap/fast", 2, 1, 2.0 / 3}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("reports (-want +got):\n%s", d)
	}
	if New(Config{Servers: []Server{{Name: "demo", Kind: "sim"}}}).Pooled() {
		t.Error("Pooled() true with no pooled server")
	}
}

// TestForecastLearnsFromItsMisses: queued calls that waited twice what was
// predicted double the forecast wait (the median), their spread becomes its
// margin (90th percentile), and unqueued calls' late first tokens add theirs.
func TestForecastLearnsFromItsMisses(t *testing.T) {
	st := &target{capQueue: 2, inflight: 3}
	for range 3 {
		st.observe(2*time.Second, 100*time.Millisecond, 0, 0) // learned TTFT 100 ms
	}
	st.service = 1 // a new request is second in the queue, 1 s a call over 2 slots: 1 s predicted
	tests := []struct {
		name         string
		ratios       []time.Duration // real wait per call for a predicted 1 s
		misses       []time.Duration // unqueued calls' first tokens
		ttft, margin time.Duration
	}{
		{"nothing learned", nil, nil, 1100 * time.Millisecond, 0},
		{"four queued calls are not enough", []time.Duration{2, 2, 2, 2}, nil, 1100 * time.Millisecond, 0},
		{"twice as slow as predicted", []time.Duration{2, 2, 2, 2, 2, 2, 2, 2, 2, 3}, nil, 2100 * time.Millisecond, time.Second},
		{"late first tokens", nil, []time.Duration{100, 100, 100, 100, 100, 100, 100, 100, 100, 400, 400}, 1100 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *st
			for _, r := range tt.ratios {
				c.firstToken(100*time.Millisecond+r*time.Second, time.Second)
			}
			for _, m := range tt.misses {
				c.firstToken(m*time.Millisecond, 0)
			}
			ttft, margin := c.forecast(Signals{}, false)
			if ttft != tt.ttft || margin != tt.margin {
				t.Errorf("forecast %v + %v, want %v + %v", ttft, margin, tt.ttft, tt.margin)
			}
		})
	}
}

// TestClientNamesAreNotTracked: on a server that serves any name, names
// clients make up (neither configured nor named by its metrics) get no
// state: calls to them are not counted, their snapshots are empty, the
// report lists none of them. A server whose metrics name ever more models
// is tracked up to maxTargetsPerServer of them, configured ones besides.
func TestClientNamesAreNotTracked(t *testing.T) {
	var reported []string
	tr := New(Config{Servers: []Server{{Name: "gpu", Kind: VLLM, Pooled: true, AnyModel: true, Models: []string{"routed"},
		Read: func(context.Context) (map[string]Signals, error) {
			out := map[string]Signals{"": {Running: 1, HasQueue: true}}
			for _, m := range reported {
				out[m] = Signals{Running: 1, HasQueue: true}
			}
			return out, nil
		}}}})
	reported = []string{"served"}
	tr.Scrape(context.Background())
	for i := range 5000 {
		tg := router.Target{Provider: "gpu", Model: fmt.Sprintf("made-up-%d", i)}
		c := tr.Start(tg, i%2 == 0)
		c.FirstToken()
		c.Done(nil)
		tr.Forecast(tg)
		if l := tr.Snapshot(tg); l.Tracked || l.InFlight != 0 {
			t.Fatalf("snapshot of %s: %+v, want untracked", tg, l)
		}
	}
	for _, name := range []string{"served", "routed"} {
		tg := router.Target{Provider: "gpu", Model: name}
		tr.Start(tg, false).Done(nil)
		if !tr.Snapshot(tg).Tracked {
			t.Errorf("%s not tracked", tg)
		}
	}
	var got []string
	for _, r := range tr.Reports() {
		got = append(got, r.Target.String())
	}
	if d := cmp.Diff([]string{"gpu/routed", "gpu/served"}, got); d != "" {
		t.Errorf("reports (-want +got):\n%s", d)
	}
	// A hostile server names 5000 models: the tracker keeps a bounded number.
	reported = reported[:0]
	for i := range 5000 {
		reported = append(reported, fmt.Sprintf("listed-%d", i))
	}
	tr.Scrape(context.Background())
	for i := range 5000 {
		tr.Start(router.Target{Provider: "gpu", Model: fmt.Sprintf("listed-%d", i)}, false).Done(nil)
	}
	tr.mu.Lock()
	n := len(tr.targets)
	tr.mu.Unlock()
	if n > maxTargetsPerServer+1 { // the configured one may come beyond the bound
		t.Errorf("%d targets tracked, want at most %d", n, maxTargetsPerServer+1)
	}
	if !tr.Snapshot(router.Target{Provider: "gpu", Model: "routed"}).Tracked {
		t.Error("a configured model lost")
	}
}
