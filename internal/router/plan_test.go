package router

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/provider"
)

// TestFilters: capability and context filters drop the targets that cannot
// take a request, keep the policy's order, and refuse at once when none can.
func TestFilters(t *testing.T) {
	small, big, blind := Target{Provider: "p", Model: "small"}, Target{Provider: "p", Model: "big"}, Target{Provider: "q", Model: "blind"}
	r := New(Config{
		Providers: []Provider{
			{Name: "p", Targets: map[string]TargetSpec{"small": {ContextWindow: 1000}, "big": {ContextWindow: 100_000}}},
			{Name: "q", Targets: map[string]TargetSpec{"blind": {Lacks: []string{"vision", "tools"}}}},
		},
		Routes: []Route{{Name: "r", Targets: []Target{small, blind, big}}},
	})
	cases := []struct {
		name string
		req  Request
		want []Target
		kind provider.Kind
	}{
		{"fits all", Request{Model: "r", PromptBytes: 400}, []Target{small, blind, big}, 0},
		{"too long for small", Request{Model: "r", PromptBytes: 40_000}, []Target{blind, big}, 0},
		{"vision", Request{Model: "r", Needs: []string{"vision"}}, []Target{small, big}, 0},
		{"vision and long", Request{Model: "r", Needs: []string{"vision"}, PromptBytes: 40_000}, []Target{big}, 0},
		{"too long for all", Request{Model: "r", Needs: []string{"tools"}, PromptBytes: 4_000_000}, nil, provider.KindContextLength},
		{"nobody sees", Request{Model: "q/blind", Needs: []string{"vision"}}, nil, provider.KindUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := r.Plan(&c.req)
			if c.kind != 0 {
				if err == nil || provider.AsError(err).Kind != c.kind {
					t.Fatalf("err %v, want kind %s", err, c.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, p.Targets); d != "" {
				t.Error(d)
			}
		})
	}
	p, _ := r.Plan(&Request{Model: "r"})
	if !p.LargerContext(big, small) || p.LargerContext(small, big) || p.LargerContext(blind, small) {
		t.Error("LargerContext: only a known, larger window follows a context-length error")
	}
}

// TestLatencyOrder: the learned fastest target goes first, a target not yet
// learned goes before both (to be learned), and one request in twenty keeps
// the configured order. Streams order by time to first token, whole answers
// by time to the answer.
func TestLatencyOrder(t *testing.T) {
	slow, fast, fresh := Target{Provider: "a", Model: "m"}, Target{Provider: "b", Model: "m"}, Target{Provider: "c", Model: "m"}
	draw := 0.5
	learned := NewLearned()
	f := &Fastest{Learned: learned, Explore: func() float64 { return draw }}
	for range 30 {
		learned.TTFT.Observe(slow, 800*time.Millisecond)
		learned.TTFT.Observe(fast, 60*time.Millisecond)
		learned.Answers.Observe(slow, 100*time.Millisecond)
		learned.Answers.Observe(fast, 900*time.Millisecond)
		learned.Answers.Observe(fresh, 500*time.Millisecond)
	}
	listed := []Target{slow, fast, fresh}
	if d := cmp.Diff([]Target{fresh, fast, slow}, f.Order(&Request{Stream: true}, listed)); d != "" {
		t.Errorf("streams: %s", d)
	}
	if d := cmp.Diff([]Target{slow, fresh, fast}, f.Order(&Request{}, listed)); d != "" {
		t.Errorf("whole answers: %s", d)
	}
	draw = 0.01
	if d := cmp.Diff(listed, f.Order(&Request{Stream: true}, listed)); d != "" {
		t.Errorf("an exploring request: %s", d)
	}
}

func TestHedgeDelay(t *testing.T) {
	tg, other := Target{Provider: "p", Model: "m"}, Target{Provider: "q", Model: "m"}
	r := New(Config{Providers: []Provider{{Name: "p"}, {Name: "q"}}, Routes: []Route{
		{Name: "auto", Targets: []Target{tg, other}, Hedge: &Hedge{}},
		{Name: "fixed", Targets: []Target{tg, other}, Hedge: &Hedge{After: 250 * time.Millisecond}},
		{Name: "off", Targets: []Target{tg, other}},
		{Name: "alone", Targets: []Target{tg}, Hedge: &Hedge{After: time.Millisecond}},
	}})
	delay := func(model string) time.Duration {
		p, err := r.Plan(&Request{Model: model, Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		return p.HedgeDelay()
	}
	if d := delay("auto"); d != time.Second {
		t.Errorf("before learning: %v, want 1s", d)
	}
	for i := 1; i <= 100; i++ { // 10ms … 1000ms
		r.Learned.TTFT.Observe(tg, time.Duration(i)*10*time.Millisecond)
	}
	if d := delay("auto"); d < 940*time.Millisecond || d > 970*time.Millisecond {
		t.Errorf("learned p95: %v, want about 950ms", d)
	}
	if d := delay("fixed"); d != 250*time.Millisecond {
		t.Errorf("configured: %v", d)
	}
	if d := delay("off"); d != 0 {
		t.Errorf("hedging off: %v", d)
	}
	if d := delay("alone"); d != 0 {
		t.Errorf("a single target cannot hedge: %v", d)
	}
}

func TestSlots(t *testing.T) {
	a := Target{Provider: "p", Model: "m"}
	r := New(Config{Providers: []Provider{{Name: "p", Models: []string{"m"}, Targets: map[string]TargetSpec{"m": {MaxConcurrency: 1}}}},
		Routes: []Route{{Name: "r", Targets: []Target{a}, MaxConcurrency: 2}}})
	p, _ := r.Plan(&Request{Model: "r"})
	release, ok := p.TakeTarget(a)
	if !ok {
		t.Fatal("first slot refused")
	}
	if _, ok := p.TakeTarget(a); ok {
		t.Fatal("a target with max_concurrency 1 took two calls")
	}
	release()
	release() // twice is once
	if r2, ok := p.TakeTarget(a); !ok {
		t.Fatal("a released slot was not given back")
	} else {
		r2()
	}
	r1, _ := p.TakeRoute()
	r2, _ := p.TakeRoute()
	if _, ok := p.TakeRoute(); ok {
		t.Fatal("a route with max_concurrency 2 took three requests")
	}
	r1()
	r2()
	direct, _ := r.Plan(&Request{Model: "p/m"})
	for range 5 {
		if _, ok := direct.TakeRoute(); !ok {
			t.Fatal("provider/model addressing has no route limit")
		}
	}
}
