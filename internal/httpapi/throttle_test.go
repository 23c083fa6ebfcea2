package httpapi

import (
	"strconv"
	"testing"
	"time"
)

// TestAuthThrottleMemoryIsBounded: a flood of addresses never grows the
// table past its bound, and expired windows make room again.
func TestAuthThrottleMemoryIsBounded(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	th := newAuthThrottle(1, time.Minute)
	for i := range maxThrottled + 500 {
		th.failed("10.0."+strconv.Itoa(i), t0)
	}
	if n := len(th.byAddr); n != maxThrottled {
		t.Fatalf("%d addresses tracked, want the bound %d", n, maxThrottled)
	}
	if th.wait("10.0.0", t0) == 0 {
		t.Error("a tracked address past its limit is not held back")
	}
	later := t0.Add(time.Minute)
	if !th.failed("10.1.0", later) || th.wait("10.1.0", later) == 0 {
		t.Error("a new address was not tracked once the old windows expired")
	}
	if n := len(th.byAddr); n != 1 {
		t.Errorf("%d addresses after the sweep, want 1", n)
	}
}
