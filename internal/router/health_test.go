package router

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func noJitter() float64 { return 0.5 } // 0.8 + 0.4×0.5: exactly the nominal length

// done reports a result no admission covers, as the failure-rate tests need.
func done(h *Health, t Target, r Result) { h.Done(Pass{Target: t}, r, 0) }

// admitOK admits t or fails the test.
func admitOK(t *testing.T, h *Health, tg Target) Pass {
	t.Helper()
	p, ok, wait := h.Admit(tg)
	if !ok {
		t.Fatalf("%v refused, back in %v", tg, wait)
	}
	return p
}

// ejections counts the ejections OnChange reports.
func ejections(h *Health) *int {
	n := new(int)
	h.OnChange = func(_ Target, state, _ string, _ time.Time) {
		if state == "ejected" {
			*n++
		}
	}
	return n
}

// ejectWithLate admits late+3 calls while tg is healthy, fails 3 of them
// (an ejection for 5 s, without jitter), lets the ejection pass, and returns
// the late ones, still in flight.
func ejectWithLate(t *testing.T, h *Health, c *clock, tg Target, late int) []Pass {
	t.Helper()
	passes := make([]Pass, late+3)
	for i := range passes {
		passes[i] = admitOK(t, h, tg)
	}
	failAll(h, passes[:3])
	c.advance(5 * time.Second)
	return passes[3:]
}

func failAll(h *Health, ps []Pass) {
	for _, p := range ps {
		h.Done(p, Failure, 0)
	}
}

// readmit passes tg's two probes.
func readmit(t *testing.T, h *Health, tg Target) {
	t.Helper()
	for i := 0; i < 2; i++ {
		h.Done(admitOK(t, h, tg), Success, 0)
	}
}

func TestEjectionAndRecovery(t *testing.T) {
	c := newClock()
	h := NewHealth(HealthConfig{BaseEjection: 10 * time.Second, Probes: 2}, c.now, noJitter)
	tg := Target{Provider: "p", Model: "m"}
	for i := 0; i < 3; i++ {
		h.Done(admitOK(t, h, tg), Failure, 0)
	}
	if _, ok, wait := h.Admit(tg); ok || wait != 10*time.Second {
		t.Fatalf("after 3 failures: admitted %v, wait %v", ok, wait)
	}
	c.advance(10 * time.Second)
	// Half-open: one probe at a time.
	probe := admitOK(t, h, tg)
	if _, ok, _ := h.Admit(tg); ok {
		t.Fatal("two probes at once")
	}
	h.Done(probe, Failure, 0) // the probe fails: out again, for twice as long
	if _, _, wait := h.Admit(tg); wait != 20*time.Second {
		t.Fatalf("repeat ejection: wait %v, want 20s", wait)
	}
	c.advance(20 * time.Second)
	readmit(t, h, tg)
	if s, _ := h.State(tg); s != "healthy" {
		t.Fatalf("after two good probes: %s", s)
	}
}

func TestFailureRate(t *testing.T) {
	c := newClock()
	h := NewHealth(HealthConfig{ConsecutiveFailures: 100, MinRequests: 10, FailureRate: 0.5}, c.now, nil)
	tg := Target{Provider: "p", Model: "m"}
	for i := 0; i < 10; i++ { // alternate: never 2 in a row, but 50% fail
		done(h, tg, Result(i%2))
	}
	if s, _ := h.State(tg); s != "ejected" {
		t.Errorf("a 50%% failure rate left the target %s", s)
	}
}

func TestCoolingAndAuthAndNeutral(t *testing.T) {
	c := newClock()
	h := NewHealth(HealthConfig{}, c.now, nil)
	a, b, n := Target{Provider: "p", Model: "a"}, Target{Provider: "p", Model: "b"}, Target{Provider: "p", Model: "n"}
	h.Done(admitOK(t, h, a), RateLimited, 7*time.Second)
	if _, ok, wait := h.Admit(a); ok || wait != 7*time.Second {
		t.Errorf("429 with Retry-After 7s: admitted %v wait %v", ok, wait)
	}
	h.Done(admitOK(t, h, b), AuthFailure, 0)
	if _, _, wait := h.Admit(b); wait != 10*time.Minute {
		t.Errorf("rejected credential out for %v", wait)
	}
	for i := 0; i < 20; i++ {
		h.Done(admitOK(t, h, n), Neutral, 0) // the client's own bad requests
	}
	if _, ok, _ := h.Admit(n); !ok {
		t.Error("client errors ejected a target")
	}
}

func TestJitterSpreadsEjections(t *testing.T) {
	c := newClock()
	seen := map[time.Duration]bool{}
	for _, j := range []float64{0, 0.5, 0.999} {
		h := NewHealth(HealthConfig{BaseEjection: 10 * time.Second}, c.now, func() float64 { return j })
		tg := Target{Provider: "p", Model: "m"}
		for i := 0; i < 3; i++ {
			done(h, tg, Failure)
		}
		_, _, wait := h.Admit(tg)
		if wait < 8*time.Second || wait > 12*time.Second {
			t.Errorf("jitter %v: wait %v outside ±20%%", j, wait)
		}
		seen[wait] = true
	}
	if len(seen) != 3 {
		t.Error("jitter did not vary the ejection")
	}
}

// TestOneBurstIsOneEjection: calls in flight when their target is ejected,
// failing afterwards, are not probes; before, each re-ejected the target for
// twice as long (24 such calls: 22 ejections, the last for minutes).
func TestOneBurstIsOneEjection(t *testing.T) {
	const calls = 24
	c := newClock()
	h := NewHealth(HealthConfig{}, c.now, nil) // real jitter: ±20%
	n := ejections(h)
	tg := Target{Provider: "p", Model: "m"}
	passes := make([]Pass, calls)
	for i := range passes {
		passes[i] = admitOK(t, h, tg) // all admitted while the target is healthy
	}
	c.advance(300 * time.Millisecond)
	var wg sync.WaitGroup
	for _, p := range passes {
		wg.Go(func() { h.Done(p, Failure, 0) })
	}
	wg.Wait()
	_, _, wait := h.Admit(tg)
	if *n != 1 || wait < 4*time.Second || wait > 6*time.Second {
		t.Fatalf("%d concurrent failures: %d ejections, out for %v; want 1 ejection of 5s ±20%%", calls, *n, wait)
	}
	// After it, the probes alone decide: two successes re-admit.
	c.advance(wait)
	readmit(t, h, tg)
	if s, _ := h.State(tg); s != "healthy" || *n != 1 {
		t.Errorf("after the probes: %s, %d ejections", s, *n)
	}
}

// TestOnlyTheProbeMovesAnEjection covers the late results one by one.
func TestOnlyTheProbeMovesAnEjection(t *testing.T) {
	tg := Target{Provider: "p", Model: "m"}
	type seen struct {
		Ejections int
		State     string
		Out       time.Duration // until the target is back, from now
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *Health, c *clock)
		want seen
	}{{
		name: "late failures while half-open: the probe still decides",
		run: func(t *testing.T, h *Health, c *clock) {
			late := ejectWithLate(t, h, c, tg, 1)
			probe := admitOK(t, h, tg)
			h.Done(late[0], Failure, 0)
			h.Done(probe, Success, 0)
		},
		want: seen{Ejections: 1, State: "half-open"},
	}, {
		name: "an old call's release does not free the probe's slot",
		run: func(t *testing.T, h *Health, c *clock) {
			late := ejectWithLate(t, h, c, tg, 1)
			admitOK(t, h, tg)                // the probe, still running
			h.Done(late[0], Neutral, 0)      // an unused admission given back late
			if _, ok, _ := h.Admit(tg); ok { // must not be a second probe
				t.Error("a second probe while the first runs")
			}
		},
		want: seen{Ejections: 1, State: "half-open"},
	}, {
		name: "a failed probe doubles the ejection",
		run: func(t *testing.T, h *Health, c *clock) {
			for i := 0; i < 3; i++ {
				h.Done(admitOK(t, h, tg), Failure, 0)
			}
			c.advance(5 * time.Second)
			h.Done(admitOK(t, h, tg), Failure, 0)
		},
		want: seen{Ejections: 2, State: "ejected", Out: 10 * time.Second},
	}, {
		name: "late failures after re-admission count but do not eject",
		run: func(t *testing.T, h *Health, c *clock) {
			late := ejectWithLate(t, h, c, tg, 3)
			readmit(t, h, tg)
			failAll(h, late)
		},
		want: seen{Ejections: 1, State: "healthy"},
	}, {
		name: "then a current failure ejects on the counted streak",
		run: func(t *testing.T, h *Health, c *clock) {
			late := ejectWithLate(t, h, c, tg, 2)
			readmit(t, h, tg)
			failAll(h, late)
			h.Done(admitOK(t, h, tg), Failure, 0) // the streak's third
		},
		want: seen{Ejections: 2, State: "ejected", Out: 10 * time.Second},
	}, {
		name: "a late 429 does not shorten a cool-down",
		run: func(t *testing.T, h *Health, c *clock) {
			a, b := admitOK(t, h, tg), admitOK(t, h, tg)
			h.Done(a, RateLimited, 30*time.Second)
			h.Done(b, RateLimited, 2*time.Second)
		},
		want: seen{State: "ejected", Out: 30 * time.Second},
	}, {
		name: "a burst of rejected-credential answers is one ejection",
		run: func(t *testing.T, h *Health, c *clock) {
			a, b := admitOK(t, h, tg), admitOK(t, h, tg)
			h.Done(a, AuthFailure, 0)
			c.advance(time.Second)
			h.Done(b, AuthFailure, 0)
		},
		want: seen{Ejections: 1, State: "ejected", Out: 10*time.Minute - time.Second},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			h := NewHealth(HealthConfig{}, c.now, noJitter)
			n := ejections(h)
			tc.run(t, h, c)
			state, until := h.State(tg)
			got := seen{Ejections: *n, State: state}
			if !until.IsZero() {
				got.Out = until.Sub(c.now())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestRepeatOffenders: a target that fails again soon after its probes
// re-admitted it is out for longer each time; before, always for the base.
// Clean service forgives one level per Forgive.
func TestRepeatOffenders(t *testing.T) {
	tg := Target{Provider: "p", Model: "m"}
	// flap ejects the target, lets its probes re-admit it, serves cleanly for
	// clean, and says how long the ejection was.
	flap := func(t *testing.T, h *Health, c *clock, clean time.Duration) time.Duration {
		for i := 0; i < 3; i++ {
			h.Done(admitOK(t, h, tg), Failure, 0)
		}
		_, _, out := h.Admit(tg)
		c.advance(out)
		readmit(t, h, tg)
		c.advance(clean)
		return out
	}
	for _, tc := range []struct {
		name  string
		clean []time.Duration // clean service after each ejection
		want  []time.Duration // each ejection's length
	}{{
		name:  "flapping: 2s of service between ejections",
		clean: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second},
		want:  []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second},
	}, {
		name:  "capped at MaxEjection",
		clean: []time.Duration{0, 0, 0, 0, 0, 0, 0, 0},
		want:  []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute},
	}, {
		name:  "two Forgive periods of clean service forgive two levels",
		clean: []time.Duration{0, 0, 4 * time.Minute, 0},
		want:  []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 10 * time.Second},
	}, {
		name:  "less than a Forgive period forgives nothing",
		clean: []time.Duration{0, 119 * time.Second, 0},
		want:  []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second},
	}, {
		name:  "a long clean run forgives all",
		clean: []time.Duration{0, 0, 0, time.Hour, 0},
		want:  []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 5 * time.Second},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			h := NewHealth(HealthConfig{}, c.now, noJitter) // Forgive: the 2m default
			var got []time.Duration
			for _, clean := range tc.clean {
				got = append(got, flap(t, h, c, clean))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ejection lengths (-want +got)\n%s", diff)
			}
		})
	}
}

// record gives t a history: ok successes, then failures enough to eject it.
func record(h *Health, t Target, ok int) {
	for i := 0; i < ok; i++ {
		done(h, t, Success)
	}
	for i := 0; i < 3; i++ {
		done(h, t, Failure)
	}
}

func TestPanicPicksTheLeastBad(t *testing.T) {
	a, b, c3 := Target{Provider: "p", Model: "a"}, Target{Provider: "p", Model: "b"}, Target{Provider: "p", Model: "c"}
	ts := []Target{a, b, c3}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, h *Health, c *clock)
		want  string // the target's model; "" for none
	}{{
		name:  "the best recent share among the ejected",
		setup: func(t *testing.T, h *Health, c *clock) { record(h, a, 2); record(h, b, 6); record(h, c3, 4) },
		want:  "b",
	}, {
		name: "never a rejected credential",
		setup: func(t *testing.T, h *Health, c *clock) {
			record(h, a, 2)
			record(h, b, 6)
			done(h, b, AuthFailure)
		},
		want: "a",
	}, {
		name: "never one cooling after a 429",
		setup: func(t *testing.T, h *Health, c *clock) {
			record(h, a, 2)
			record(h, b, 6)
			h.Done(Pass{Target: b}, RateLimited, time.Minute)
		},
		want: "a",
	}, {
		name: "a half-open target with its probe running",
		setup: func(t *testing.T, h *Health, c *clock) {
			record(h, a, 2)
			c.advance(5 * time.Second)
			admitOK(t, h, a) // the probe
		},
		want: "a",
	}, {
		name: "an admissible target is Admit's, not Panic's",
		setup: func(t *testing.T, h *Health, c *clock) {
			record(h, a, 0)
			c.advance(5 * time.Second) // half-open, no probe yet
			done(h, b, Success)
		},
		want: "",
	}, {
		name: "a tie goes to the one back soonest",
		setup: func(t *testing.T, h *Health, c *clock) {
			record(h, b, 1)
			c.advance(time.Second)
			record(h, a, 1)
		},
		want: "b",
	}, {
		name: "an even tie goes to the earlier in the plan",
		setup: func(t *testing.T, h *Health, c *clock) {
			record(h, c3, 1)
			record(h, b, 1)
		},
		want: "b",
	}, {
		name: "none for a target that nearly always fails (a dead fleet gets no attempt)",
		setup: func(t *testing.T, h *Health, c *clock) {
			record(h, a, 0)
			record(h, b, 0)
		},
		want: "",
	}, {
		name:  "nothing out",
		setup: func(t *testing.T, h *Health, c *clock) {},
		want:  "",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			h := NewHealth(HealthConfig{}, c.now, noJitter)
			tc.setup(t, h, c)
			got := ""
			if p, ok := h.Panic(ts); ok {
				got = p.Target.Model
			}
			if got != tc.want {
				t.Errorf("Panic picked %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPanicPassMovesNoState: what a brown-out's calls come to ranks their
// target but neither extends its ejection nor re-admits it.
func TestPanicPassMovesNoState(t *testing.T) {
	c := newClock()
	h := NewHealth(HealthConfig{}, c.now, noJitter)
	n := ejections(h)
	tg := Target{Provider: "p", Model: "m"}
	record(h, tg, 2)
	_, before := h.State(tg)
	for i := 0; i < 10; i++ {
		p, ok := h.Panic([]Target{tg})
		if !ok {
			t.Fatal("no panic pass for a target ejected for failures")
		}
		h.Done(p, Result(i%2), 0)
	}
	state, after := h.State(tg)
	if diff := cmp.Diff([]any{"ejected", before, 1}, []any{state, after, *n}); diff != "" {
		t.Errorf("state, until, ejections (-want +got)\n%s", diff)
	}
	p, _ := h.Panic([]Target{tg})
	h.Done(p, AuthFailure, 0) // a fact about the credential, whoever learnt it
	if _, ok := h.Panic([]Target{tg}); ok {
		t.Error("panic pass to a rejected credential")
	}
}

func TestAdmissible(t *testing.T) {
	c := newClock()
	h := NewHealth(HealthConfig{}, c.now, noJitter)
	healthy, unknown, ejected, cooling := Target{Model: "healthy"}, Target{Model: "unknown"}, Target{Model: "ejected"}, Target{Model: "cooling"}
	halfOpen, probing := Target{Model: "half-open"}, Target{Model: "probing"}
	record(h, halfOpen, 0)
	record(h, probing, 0)
	c.advance(5 * time.Second)
	admitOK(t, h, probing)
	done(h, healthy, Success)
	record(h, ejected, 0)
	h.Done(Pass{Target: cooling}, RateLimited, time.Second)
	all := []Target{healthy, unknown, ejected, cooling, halfOpen, probing}
	if got := h.Admissible(all); got != 3 {
		t.Errorf("Admissible = %d, want 3 (healthy, unknown, half-open)", got)
	}
	if got := h.Admissible(all); got != 3 {
		t.Errorf("Admissible took an admission: %d on the second call", got)
	}
}

// TestBrownOut: three targets answering 55% of calls. Each request fails
// over through the admissible targets; with Panic, a request that finds them
// all out goes to the least bad instead of being refused. Without it (the
// old behaviour) nearly every request finds every target out.
func TestBrownOut(t *testing.T) {
	ts := []Target{{Provider: "p", Model: "a"}, {Provider: "p", Model: "b"}, {Provider: "p", Model: "c"}}
	serve := func(panicking bool) float64 {
		c := newClock()
		h := NewHealth(HealthConfig{}, c.now, noJitter)
		upstream := rand.New(rand.NewPCG(1, 2))
		const requests = 5_000 // 100 s at 50 requests a second
		served := 0
		for range requests {
			c.advance(20 * time.Millisecond)
			var passes []Pass
			for _, tg := range ts {
				if p, ok, _ := h.Admit(tg); ok {
					passes = append(passes, p)
				}
			}
			if len(passes) == 0 && panicking {
				if p, ok := h.Panic(ts); ok {
					passes = append(passes, p)
				}
			}
			for i, p := range passes {
				if upstream.Float64() < 0.55 {
					h.Done(p, Success, 0)
					served++
					for _, rest := range passes[i+1:] {
						h.Done(rest, Neutral, 0) // admitted, not used
					}
					break
				}
				h.Done(p, Failure, 0)
			}
		}
		return float64(served) / requests
	}
	without, with := serve(false), serve(true)
	t.Logf("served: %.1f%% without a panic threshold, %.1f%% with", 100*without, 100*with)
	if without > 0.2 {
		t.Errorf("without Panic %.1f%% served: the simulation no longer shows the brown-out", 100*without)
	}
	if with < 0.5 {
		t.Errorf("with Panic %.1f%% served, want at least ~55%%", 100*with)
	}
}
