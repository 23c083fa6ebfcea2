package router

import (
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestEjectionAndRecovery(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	h := NewHealth(HealthConfig{BaseEjection: 10 * time.Second, Probes: 2}, c.now, func() float64 { return 0.5 }) // no jitter
	tg := Target{Provider: "p", Model: "m"}
	for i := 0; i < 3; i++ {
		if ok, _ := h.Admit(tg); !ok {
			t.Fatalf("attempt %d refused before ejection", i)
		}
		h.Done(tg, Failure, 0)
	}
	if ok, wait := h.Admit(tg); ok || wait != 10*time.Second {
		t.Fatalf("after 3 failures: admitted %v, wait %v", ok, wait)
	}
	c.advance(10 * time.Second)
	// Half-open: one probe at a time.
	if ok, _ := h.Admit(tg); !ok {
		t.Fatal("no probe after the ejection")
	}
	if ok, _ := h.Admit(tg); ok {
		t.Fatal("two probes at once")
	}
	h.Done(tg, Failure, 0) // the probe fails: out again, for twice as long
	if _, wait := h.Admit(tg); wait != 20*time.Second {
		t.Fatalf("repeat ejection: wait %v, want 20s", wait)
	}
	c.advance(20 * time.Second)
	for i := 0; i < 2; i++ {
		if ok, _ := h.Admit(tg); !ok {
			t.Fatalf("probe %d refused", i)
		}
		h.Done(tg, Success, 0)
	}
	if s, _ := h.State(tg); s != "healthy" {
		t.Fatalf("after two good probes: %s", s)
	}
}

func TestFailureRate(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	h := NewHealth(HealthConfig{ConsecutiveFailures: 100, MinRequests: 10, FailureRate: 0.5}, c.now, nil)
	tg := Target{Provider: "p", Model: "m"}
	for i := 0; i < 10; i++ { // alternate: never 2 in a row, but 50% fail
		h.Done(tg, Result(i%2), 0)
	}
	if s, _ := h.State(tg); s != "ejected" {
		t.Errorf("a 50%% failure rate left the target %s", s)
	}
}

func TestCoolingAndAuthAndNeutral(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	h := NewHealth(HealthConfig{}, c.now, nil)
	a, b, n := Target{Provider: "p", Model: "a"}, Target{Provider: "p", Model: "b"}, Target{Provider: "p", Model: "n"}
	h.Done(a, RateLimited, 7*time.Second)
	if ok, wait := h.Admit(a); ok || wait != 7*time.Second {
		t.Errorf("429 with Retry-After 7s: admitted %v wait %v", ok, wait)
	}
	h.Done(b, AuthFailure, 0)
	if _, wait := h.Admit(b); wait != 10*time.Minute {
		t.Errorf("rejected credential out for %v", wait)
	}
	for i := 0; i < 20; i++ {
		h.Done(n, Neutral, 0) // the client's own bad requests
	}
	if ok, _ := h.Admit(n); !ok {
		t.Error("client errors ejected a target")
	}
}

func TestJitterSpreadsEjections(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	seen := map[time.Duration]bool{}
	for _, j := range []float64{0, 0.5, 0.999} {
		h := NewHealth(HealthConfig{BaseEjection: 10 * time.Second}, c.now, func() float64 { return j })
		tg := Target{Provider: "p", Model: "m"}
		for i := 0; i < 3; i++ {
			h.Done(tg, Failure, 0)
		}
		_, wait := h.Admit(tg)
		if wait < 8*time.Second || wait > 12*time.Second {
			t.Errorf("jitter %v: wait %v outside ±20%%", j, wait)
		}
		seen[wait] = true
	}
	if len(seen) != 3 {
		t.Error("jitter did not vary the ejection")
	}
}
