package httpapi

import (
	"sync"
	"time"
)

// authThrottle counts failed authentications per client address and holds
// back an address that failed limit times within a window, until that
// window ends. Successes are not counted and do not reset the count, so
// one valid key cannot launder guesses at another.
type authThrottle struct {
	limit  int
	window time.Duration

	mu        sync.Mutex
	byAddr    map[string]authFailures
	lastSweep time.Time
}

type authFailures struct {
	count int
	since time.Time // start of the window
}

// maxThrottled bounds the table: past it, expired entries are swept (at
// most once a second, so a flood of new addresses cannot make every failure
// a full scan), and an address that still finds no room goes uncounted.
const maxThrottled = 10_000

func newAuthThrottle(limit int, window time.Duration) *authThrottle {
	if limit <= 0 {
		return nil
	}
	return &authThrottle{limit: limit, window: window, byAddr: map[string]authFailures{}}
}

// wait is how long addr is held back; 0 when it may try.
func (t *authThrottle) wait(addr string, now time.Time) time.Duration {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.byAddr[addr]
	if !ok || f.count < t.limit {
		return 0
	}
	if end := f.since.Add(t.window); now.Before(end) {
		return end.Sub(now)
	}
	return 0
}

// failed counts a failure; it reports whether addr has just reached the limit.
func (t *authThrottle) failed(addr string, now time.Time) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.byAddr[addr]
	if !ok && len(t.byAddr) >= maxThrottled && !t.sweep(now) {
		return false
	}
	if !ok || !now.Before(f.since.Add(t.window)) {
		f = authFailures{since: now}
	}
	f.count++
	t.byAddr[addr] = f
	return f.count == t.limit
}

// sweep drops expired windows; it reports whether there is room after.
func (t *authThrottle) sweep(now time.Time) bool {
	if now.Sub(t.lastSweep) >= time.Second {
		t.lastSweep = now
		for a, f := range t.byAddr {
			if !now.Before(f.since.Add(t.window)) {
				delete(t.byAddr, a)
			}
		}
	}
	return len(t.byAddr) < maxThrottled
}
