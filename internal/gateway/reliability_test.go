package gateway

import (
	"context"
	"io"
	"log/slog"
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
	one := map[string]router.TargetSpec{"m": {MaxConcurrency: 1}}
	g := &Gateway{
		Router: router.New(router.Config{Providers: []router.Provider{{Name: "a", Targets: one}, {Name: "b", Targets: one}},
			Routes: []router.Route{{Name: "r", Targets: []router.Target{a, b}, Hedge: &router.Hedge{After: 10 * time.Millisecond}}}}),
		Providers: map[string]provider.Provider{"a": slowProvider{}, "b": slowProvider{}},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := &llm.ChatRequest{Model: "r", Stream: true, Messages: []llm.Message{{Role: "user", Content: llm.TextContent("hi")}}}
	if _, _, err := g.ChatStream(ctx, nil, req); err == nil {
		t.Fatal("a request past its deadline succeeded")
	}
	plan, _ := g.Router.Plan(&router.Request{Model: "r"})
	deadline := time.Now().Add(2 * time.Second)
	for {
		ra, okA := plan.TakeTarget(a)
		rb, okB := plan.TakeTarget(b)
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
