package gateway

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

func TestRetryBudgetBoundsFailingRetries(t *testing.T) {
	b := &RetryBudget{Ratio: 0.2, Burst: 10}
	retries := 0
	const requests = 1000
	for i := 0; i < requests; i++ {
		b.Earn()
		for b.Spend() { // the whole fleet fails: every retry fails too
			retries++
			b.Report(false)
		}
	}
	// One retry may go ahead on trust (the last one succeeded, at start).
	if limit := 0.2*requests + 10 + 1; float64(retries) > limit {
		t.Errorf("%d retries for %d requests with every retry failing; want at most %.0f", retries, requests, limit)
	}
}

func TestRetryBudgetRefundsSuccess(t *testing.T) {
	b := &RetryBudget{Ratio: 0.2, Burst: 1}
	for i := 0; i < 100; i++ { // one bad target, good ones behind it
		if !b.Spend() {
			t.Fatalf("retry %d refused though every retry succeeds", i)
		}
		b.Report(true)
	}
}

func TestLearnedHedgeDelay(t *testing.T) {
	tg := router.Target{Provider: "p", Model: "m"}
	g := &Gateway{Hedges: map[string]time.Duration{"auto": 0, "fixed": 250 * time.Millisecond}, TTFTs: &TTFT{}}
	plan := []router.Target{tg, {Provider: "q", Model: "m"}}
	if d := g.hedgeDelay("auto", plan); d != time.Second {
		t.Errorf("before learning: %v, want 1s", d)
	}
	for i := 1; i <= 100; i++ { // 10ms … 1000ms
		g.TTFTs.Observe(tg, time.Duration(i)*10*time.Millisecond)
	}
	if d := g.hedgeDelay("auto", plan); d < 940*time.Millisecond || d > 970*time.Millisecond {
		t.Errorf("learned p95: %v, want about 950ms", d)
	}
	if d := g.hedgeDelay("fixed", plan); d != 250*time.Millisecond {
		t.Errorf("configured: %v", d)
	}
	if d := g.hedgeDelay("off", plan); d != 0 {
		t.Errorf("hedging off: %v", d)
	}
}

// slowProvider answers streams only when its context ends.
type slowProvider struct{}

func (slowProvider) ChatCompletion(ctx context.Context, _ *llm.ChatRequest) (*llm.ChatResponse, error) {
	<-ctx.Done()
	return nil, provider.ClassifyTransport(ctx.Err())
}

func (slowProvider) ChatCompletionStream(ctx context.Context, _ *llm.ChatRequest) (provider.ChatStream, error) {
	<-ctx.Done()
	return nil, provider.ClassifyTransport(ctx.Err())
}

// TestHedgeGivesSlotsBack: a hedged request that ends while both attempts
// are in flight leaves no target slot taken.
func TestHedgeGivesSlotsBack(t *testing.T) {
	a, b := router.Target{Provider: "a", Model: "m"}, router.Target{Provider: "b", Model: "m"}
	g := &Gateway{
		Router:      router.New([]string{"a", "b"}, nil, []router.Route{{Name: "r", Targets: []router.Target{a, b}}}),
		Providers:   map[string]provider.Provider{"a": slowProvider{}, "b": slowProvider{}},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hedges:      map[string]time.Duration{"r": 10 * time.Millisecond},
		TargetSlots: NewSlots(map[string]int{"a/m": 1, "b/m": 1}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := &llm.ChatRequest{Model: "r", Stream: true, Messages: []llm.Message{{Role: "user", Content: llm.TextContent("hi")}}}
	if _, _, err := g.ChatStream(ctx, nil, req); err == nil {
		t.Fatal("a request past its deadline succeeded")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		ra, okA := g.TargetSlots.Take("a/m")
		rb, okB := g.TargetSlots.Take("b/m")
		if okA && okB {
			ra()
			rb()
			return
		}
		if okA {
			ra()
		}
		if okB {
			rb()
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots still taken after the request ended: a free %v, b free %v", okA, okB)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLatencyOrder: the learned fastest target goes first, a target not yet
// learned goes before both (to be learned), and one request in twenty keeps
// the configured order.
func TestLatencyOrder(t *testing.T) {
	slow, fast, fresh := router.Target{Provider: "a", Model: "m"}, router.Target{Provider: "b", Model: "m"}, router.Target{Provider: "c", Model: "m"}
	draw := 0.5
	g := &Gateway{TTFTs: &TTFT{}, Explore: func() float64 { return draw }}
	for range 30 {
		g.TTFTs.Observe(slow, 800*time.Millisecond)
		g.TTFTs.Observe(fast, 60*time.Millisecond)
	}
	plan := []router.Target{slow, fast, fresh}
	want := []router.Target{fresh, fast, slow}
	if got := g.byLatency(plan, g.TTFTs); !slices.Equal(got, want) {
		t.Errorf("latency order %v, want %v", got, want)
	}
	draw = 0.01
	if got := g.byLatency(plan, g.TTFTs); !slices.Equal(got, plan) {
		t.Errorf("an exploring request got %v, want the configured order", got)
	}
}
