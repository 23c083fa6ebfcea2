package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// TestShedding: a target at its concurrency limit is skipped; with every
// target full the client gets a fast 503 all_targets_busy, and with the
// route full a fast 429 route_busy, both with Retry-After and no call made.
func TestShedding(t *testing.T) {
	one := router.TargetSpec{MaxConcurrency: 1}
	cases := []struct {
		name  string
		hold  func(p *router.Plan, a, b router.Target) []func() // slots taken by other requests
		want  answer
		calls []int64
	}{
		{"free", func(*router.Plan, router.Target, router.Target) []func() { return nil },
			answer{Text: "a", Attempts: 1}, []int64{1, 0}},
		{"a full: skipped", func(p *router.Plan, a, _ router.Target) []func() { return []func(){take(t)(p.TakeTarget(a))} },
			answer{Text: "b", Attempts: 1}, []int64{0, 1}},
		{"all full", func(p *router.Plan, a, b router.Target) []func() {
			return []func(){take(t)(p.TakeTarget(a)), take(t)(p.TakeTarget(b))}
		}, answer{Kind: "overloaded", Code: "all_targets_busy", RetryAfter: time.Second}, []int64{0, 0}},
		{"route full", func(p *router.Plan, _, _ router.Target) []func() { return []func(){take(t)(p.TakeRoute())} },
			answer{Kind: "rate_limited", Code: "route_busy", RetryAfter: time.Second}, []int64{0, 0}},
	}
	for _, m := range []mode{whole, streamed, hedgedStream} {
		for _, c := range cases {
			t.Run(m.String()+"/"+c.name, func(t *testing.T) {
				f := fleet{fakes: []*fake{newFake("a"), newFake("b")}, specs: map[string]router.TargetSpec{"a": one, "b": one},
					route: router.Route{MaxConcurrency: 1}, health: true}
				if m == hedgedStream {
					f.route.Hedge = &router.Hedge{After: time.Hour}
				}
				h := f.build(t)
				plan, _ := h.g.Router.Plan(&router.Request{Model: "r"})
				for _, release := range c.hold(plan, h.fakes[0].target(), h.fakes[1].target()) {
					defer release()
				}
				if d := cmp.Diff(c.want, h.send(context.Background(), request(m != whole, "hello"))); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
				if d := cmp.Diff(c.calls, h.calls()); d != "" {
					t.Errorf("calls (-want +got):\n%s", d)
				}
			})
		}
	}
}

// take checks that a slot was free and returns its release.
func take(t *testing.T) func(release func(), ok bool) func() {
	return func(release func(), ok bool) func() {
		if !ok {
			t.Fatal("slot taken before the test")
		}
		return release
	}
}

// TestSheddingConcurrent: requests at once never put more calls on a
// target than its limit; those that find every target full are refused at
// once, while the admitted ones are still running.
func TestSheddingConcurrent(t *testing.T) {
	gate := make(chan struct{})
	two := router.TargetSpec{MaxConcurrency: 2}
	h := fleet{fakes: []*fake{newFake("a", step{after: gate}), newFake("b", step{after: gate})},
		specs: map[string]router.TargetSpec{"a": two, "b": two}}.build(t)
	const requests = 7
	answers := make(chan answer, requests)
	for i := 0; i < requests; i++ {
		go func() { answers <- h.send(context.Background(), request(i%2 == 0, "hello")) }()
	}
	// The four admitted wait for the gate: the first three answers are the refused.
	for i := 0; i < 3; i++ {
		if a := <-answers; a.Code != "all_targets_busy" {
			t.Errorf("answered before the gate opened: %+v", a)
		}
	}
	close(gate)
	for i := 0; i < 4; i++ {
		if a := <-answers; a.Kind != "" {
			t.Errorf("admitted request failed: %+v", a)
		}
	}
	for _, f := range h.fakes {
		if n := f.peak.Load(); n != 2 {
			t.Errorf("%s, limited to 2, served %d calls at once", f.name, n)
		}
	}
}

// TestStreamHoldsSlots: an open stream holds its target's and its route's
// slots until it is closed.
func TestStreamHoldsSlots(t *testing.T) {
	one := router.TargetSpec{MaxConcurrency: 1}
	h := fleet{fakes: []*fake{newFake("a")}, specs: map[string]router.TargetSpec{"a": one}}.build(t)
	s, _, err := h.g.ChatStream(context.Background(), &Call{}, request(true, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if busy := h.send(context.Background(), request(false, "again")); busy.Code != "all_targets_busy" {
		t.Errorf("second request while the stream is open: %+v, want all_targets_busy", busy)
	}
	read(s, nil)
	s.Close()
	if got := h.send(context.Background(), request(false, "again")); got.Text != "a" {
		t.Errorf("after the stream closed: %+v", got)
	}

	h = fleet{fakes: []*fake{newFake("a")}, route: router.Route{MaxConcurrency: 1}}.build(t)
	s, _, err = h.g.ChatStream(context.Background(), &Call{}, request(true, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if busy := h.send(context.Background(), request(false, "again")); busy.Code != "route_busy" {
		t.Errorf("second request while the stream is open: %+v, want route_busy", busy)
	}
	s.Close()
	if got := h.send(context.Background(), request(false, "again")); got.Text != "a" {
		t.Errorf("after the stream closed: %+v", got)
	}
}

// TestDeadlines: no attempt starts with under minAttempt left — not a
// first attempt, a failover, a hedge or a resume. The hedge and resume
// cases are issue 9's third bug: they skipped the check plain attempts make.
func TestDeadlines(t *testing.T) {
	late := fail(provider.KindUpstream)
	late.delay = 60 * time.Millisecond // fails with about 40 ms left
	cases := []struct {
		name  string
		mode  mode
		left  time.Duration // the request's time
		route router.Route
		a     step
		calls []int64
		want  string // the error's kind and code; "" for success
	}{
		{"first attempt, whole", whole, 30 * time.Millisecond, router.Route{}, step{}, []int64{0, 0}, "timeout deadline_exceeded"},
		{"first attempt, stream", streamed, 30 * time.Millisecond, router.Route{}, step{}, []int64{0, 0}, "timeout deadline_exceeded"},
		{"first attempt, hedged", hedgedStream, 30 * time.Millisecond, router.Route{}, step{}, []int64{0, 0}, "timeout deadline_exceeded"},
		{"failover, whole", whole, 100 * time.Millisecond, router.Route{}, late, []int64{1, 0}, "upstream"},
		{"failover, stream", streamed, 100 * time.Millisecond, router.Route{}, late, []int64{1, 0}, "upstream"},
		{"failover, hedged", hedgedStream, 100 * time.Millisecond, router.Route{}, late, []int64{1, 0}, "upstream"},
		{"hedge", hedgedStream, 100 * time.Millisecond, router.Route{Hedge: &router.Hedge{After: 60 * time.Millisecond}},
			step{hang: true}, []int64{1, 0}, "timeout"},
		{"resume", streamed, 100 * time.Millisecond, router.Route{Resume: true},
			step{text: []string{"Hello, "}, pause: 60 * time.Millisecond, brk: broken}, []int64{1, 0}, "unavailable"},
		{"plenty of time", streamed, time.Minute, router.Route{Resume: true},
			step{text: []string{"Hello, "}, pause: 60 * time.Millisecond, brk: broken}, []int64{1, 1}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			route := c.route
			if c.mode == hedgedStream && route.Hedge == nil {
				route.Hedge = &router.Hedge{After: time.Hour}
			}
			h := fleet{fakes: []*fake{newFake("a", c.a), newFake("b")}, route: route}.build(t)
			ctx, cancel := context.WithTimeout(context.Background(), c.left)
			defer cancel()
			got := h.send(ctx, request(c.mode != whole, "hello"))
			if strings.TrimSpace(got.Kind+" "+got.Code) != c.want {
				t.Errorf("answer %+v, want kind %q", got, c.want)
			}
			if d := cmp.Diff(c.calls, h.calls()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}

// TestDeadlineSpendsNoRetry: a retry the deadline stops is not paid from
// the retry budget: no attempt was made, and the next request's failover
// must still find the token.
func TestDeadlineSpendsNoRetry(t *testing.T) {
	late := fail(provider.KindUpstream)
	late.delay = 60 * time.Millisecond // fails with about 40 ms left
	a := newFake("a", fail(provider.KindUpstream), late, fail(provider.KindUpstream))
	b := newFake("b", fail(provider.KindUpstream), step{})
	// Two retries saved, and hardly any earned: every token counts.
	h := fleet{fakes: []*fake{a, b}, retries: &RetryBudget{Ratio: 0.001, Burst: 2}}.build(t)
	var got []answer
	got = append(got, h.send(context.Background(), request(false, "both fail"))) // a failed retry: no more retries on trust
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	got = append(got, h.send(ctx, request(false, "out of time")))
	got = append(got, h.send(context.Background(), request(false, "b answers")))
	want := []answer{{Kind: "upstream", Attempts: 2}, {Kind: "upstream", Attempts: 1}, {Text: "b", Attempts: 2}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
