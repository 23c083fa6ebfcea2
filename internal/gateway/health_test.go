package gateway

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

func limited(after time.Duration) step {
	return step{fail: &provider.Error{Kind: provider.KindRateLimited, Status: 429, RetryAfter: after, Message: "slow down"}}
}

// TestRateLimitStaysRateLimit is issue 9's correction "a rate limit stays a
// rate limit": while every target cools down after a 429, the client gets
// 429 rate_limited with Retry-After = the earliest return (it got 503
// no_healthy_target, and SDKs switched to server-error handling).
func TestRateLimitStaysRateLimit(t *testing.T) {
	for _, m := range []mode{whole, streamed, hedgedStream} {
		t.Run(m.String(), func(t *testing.T) {
			f := fleet{fakes: []*fake{newFake("a", limited(3*time.Second), step{}), newFake("b", limited(7*time.Second), step{})}, health: true}
			if m == hedgedStream {
				f.route.Hedge = &router.Hedge{After: time.Hour}
			}
			h := f.build(t)
			send := func() answer { return h.send(context.Background(), request(m != whole, "hello")) }
			var got []answer
			got = append(got, send()) // both tried: the last 429 is the answer
			got = append(got, send()) // both cooling
			h.clock.advance(time.Second)
			got = append(got, send())
			h.clock.advance(2 * time.Second) // a is back
			got = append(got, send())
			want := []answer{
				{Kind: "rate_limited", RetryAfter: 7 * time.Second, Attempts: 2},
				{Kind: "rate_limited", Code: "rate_limited", RetryAfter: 3 * time.Second},
				{Kind: "rate_limited", Code: "rate_limited", RetryAfter: 2 * time.Second},
				{Text: "a", Attempts: 1},
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if d := cmp.Diff([]int64{2, 1}, h.calls()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}

// TestTargetsOut: what a client gets when targets are out of the plan for
// other reasons than rate limits alone.
func TestTargetsOut(t *testing.T) {
	rejected := fail(provider.KindUpstreamAuth)
	cases := []struct {
		name string
		a, b step
		// setup runs after one request that the steps may have failed.
		setup func(h *harness)
		want  answer
		calls []int64 // after both requests
		state []string
	}{
		{
			name:  "both credentials rejected: 503 until the first returns",
			a:     rejected,
			b:     rejected,
			want:  answer{Kind: "overloaded", Code: "no_healthy_target", RetryAfter: 10 * time.Minute},
			calls: []int64{1, 1},
			state: []string{"ejected", "ejected"},
		},
		{
			name:  "cooling and rejected: not only rate limits, so 503",
			a:     limited(3 * time.Second),
			b:     rejected,
			want:  answer{Kind: "overloaded", Code: "no_healthy_target", RetryAfter: 3 * time.Second},
			calls: []int64{1, 1},
			state: []string{"ejected", "ejected"},
		},
		{
			name:  "one ejected for failures: skipped",
			setup: func(h *harness) { h.eject(h.fakes[0].target()) },
			want:  answer{Text: "b", Attempts: 1},
			calls: []int64{1, 1},
			state: []string{"ejected", "healthy"},
		},
		{
			// Envoy's panic threshold: with every target out for failures,
			// the least bad still takes the request, and its result moves no
			// state (issue 10, item 16).
			name:  "all ejected for failures: the least bad still serves",
			setup: func(h *harness) { h.eject(h.fakes[0].target()); h.eject(h.fakes[1].target()) },
			want:  answer{Text: "a", Attempts: 1},
			calls: []int64{2, 0},
			state: []string{"ejected", "ejected"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := fleet{fakes: []*fake{newFake("a", c.a, step{}), newFake("b", c.b, step{})}, health: true}.build(t)
			h.send(context.Background(), request(false, "first"))
			if c.setup != nil {
				c.setup(h)
			}
			if d := cmp.Diff(c.want, h.send(context.Background(), request(false, "second"))); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.calls, h.calls()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
			var state []string
			for _, f := range h.fakes {
				s, _ := h.g.Health.State(f.target())
				state = append(state, s)
			}
			if d := cmp.Diff(c.state, state); d != "" {
				t.Errorf("health (-want +got):\n%s", d)
			}
		})
	}
}

// TestBrownOut is issue 10's item 16 through the gateway: three targets
// each answering 55% of calls (503 otherwise). Ejection takes every target
// out, and without a panic threshold nearly every request was refused
// (4.7% served in the report); with it the gateway serves at least what
// one attempt per request can (55%), failover adding more.
func TestBrownOut(t *testing.T) {
	upstream := rand.New(rand.NewPCG(9, 16))
	var mu sync.Mutex
	flaky := func() step {
		mu.Lock()
		defer mu.Unlock()
		if upstream.Float64() < 0.55 {
			return step{}
		}
		return fail(provider.KindOverloaded)
	}
	fakes := []*fake{newFake("a"), newFake("b"), newFake("c")}
	for _, f := range fakes {
		f.pick = flaky
	}
	h := fleet{fakes: fakes, health: true}.build(t)
	const requests = 1000
	served, ejections := 0, 0
	h.g.Health.OnChange = func(_ router.Target, state, _ string, _ time.Time) {
		if state == "ejected" {
			ejections++
		}
	}
	for i := 0; i < requests; i++ {
		if a := h.send(context.Background(), request(false, "hello")); a.Kind == "" {
			served++
		}
		h.clock.advance(20 * time.Millisecond) // 50 requests a second
	}
	t.Logf("served %d of %d requests; upstream calls %v; %d ejections", served, requests, h.calls(), ejections)
	if ejections == 0 {
		t.Fatal("no target was ejected: the test no longer shows a brown-out")
	}
	if served < requests*55/100 {
		t.Errorf("served %d of %d requests in a brown-out, want at least 55%%", served, requests)
	}
}
