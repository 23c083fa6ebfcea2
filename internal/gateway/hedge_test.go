package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/router"
)

// TestHedging: a stream whose first target has no token after the hedge
// delay races the next; the first token wins, the loser is cancelled, billed
// for its prompt, and gives back its slot and its health admission (here a
// half-open probe, which would otherwise keep its target out for good).
func TestHedging(t *testing.T) {
	one := router.TargetSpec{MaxConcurrency: 1}
	cases := []struct {
		name string
		// steps for a and b; b's may wait for a's call (and a's for b's).
		a, b   func(a, b *fake) step
		want   answer
		loser  int // index of the fake that lost
		billed []string
	}{
		{
			name:   "the hedge wins",
			a:      func(_, _ *fake) step { return step{hang: true} },
			b:      func(_, _ *fake) step { return step{} },
			want:   answer{Text: "b", Attempts: 2},
			loser:  0,
			billed: []string{"a canceled", "b ok"},
		},
		{
			name:   "the primary wins after the hedge started",
			a:      func(_, b *fake) step { return step{after: b.started} },
			b:      func(_, _ *fake) step { return step{hang: true} },
			want:   answer{Text: "a", Attempts: 2},
			loser:  1,
			billed: []string{"a ok", "b canceled"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := newFake("a"), newFake("b")
			a.steps, b.steps = []step{c.a(a, b)}, []step{c.b(a, b)}
			h := fleet{fakes: []*fake{a, b}, health: true, specs: map[string]router.TargetSpec{"a": one, "b": one},
				route: router.Route{Hedge: &router.Hedge{After: 5 * time.Millisecond}}}.build(t)
			loser := h.fakes[c.loser]
			// The loser is in half-open: its one probe at a time is the hedge race's.
			h.eject(loser.target())
			h.clock.advance(5 * time.Second)

			got := h.send(context.Background(), request(true, "hello"))
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("answer (-want +got):\n%s", d)
			}
			// send closed the stream: the bill is settled once the losers are on it.
			if d := cmp.Diff(c.billed, h.ledger.billed()); d != "" {
				t.Errorf("billed (-want +got):\n%s", d)
			}
			if n := loser.cancelled.Load(); n != 1 {
				t.Errorf("%s: %d calls cancelled, want the losing one", loser.name, n)
			}
			for _, f := range h.fakes {
				if !h.free(f.target()) {
					t.Errorf("%s: slot still taken after the request ended", f.name)
				}
			}
			if n := h.g.Health.Admissible([]router.Target{loser.target()}); n != 1 {
				t.Errorf("%s: its half-open admission was not given back", loser.name)
			}
		})
	}
}

// TestHedgeEndsWithRequest: a hedged request that ends (its deadline) while
// both attempts are in flight cancels both and leaves no slot taken.
func TestHedgeEndsWithRequest(t *testing.T) {
	one := router.TargetSpec{MaxConcurrency: 1}
	a, b := newFake("a", step{hang: true}), newFake("b", step{hang: true})
	h := fleet{fakes: []*fake{a, b}, specs: map[string]router.TargetSpec{"a": one, "b": one},
		route: router.Route{Hedge: &router.Hedge{After: 5 * time.Millisecond}}}.build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	got := h.send(ctx, request(true, "hello"))
	if got.Kind != "timeout" {
		t.Errorf("a request past its deadline: %+v, want a timeout", got)
	}
	// The attempts still in flight are given back in the background as
	// they return, with nothing to wait on: poll, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for !h.free(a.target()) || !h.free(b.target()) {
		if time.Now().After(deadline) {
			t.Fatal("slots still taken after the request ended")
		}
		time.Sleep(time.Millisecond)
	}
	if d := cmp.Diff([]int64{1, 1}, []int64{a.cancelled.Load(), b.cancelled.Load()}); d != "" {
		t.Errorf("calls cancelled (-want +got):\n%s", d)
	}
}
