package router

import (
	"math/rand/v2"
	"sync"
	"time"
)

// HealthConfig tunes outlier ejection. Zero fields take the defaults.
type HealthConfig struct {
	ConsecutiveFailures int           // failures in a row that eject a target; default 3
	FailureRate         float64       // share of failures in the window that ejects; default 0.5
	MinRequests         int           // requests in the window before the rate counts; default 10
	Window              time.Duration // default 10s
	BaseEjection        time.Duration // first ejection; doubles for repeat offenders; default 5s
	MaxEjection         time.Duration // cap; default 5m
	Probes              int           // successes in half-open that re-admit; default 2
	CredentialEjection  time.Duration // a rejected credential stays out this long; default 10m
}

func (c HealthConfig) withDefaults() HealthConfig {
	if c.ConsecutiveFailures <= 0 {
		c.ConsecutiveFailures = 3
	}
	if c.FailureRate <= 0 {
		c.FailureRate = 0.5
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 10
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.BaseEjection <= 0 {
		c.BaseEjection = 5 * time.Second
	}
	if c.MaxEjection <= 0 {
		c.MaxEjection = 5 * time.Minute
	}
	if c.Probes <= 0 {
		c.Probes = 2
	}
	if c.CredentialEjection <= 0 {
		c.CredentialEjection = 10 * time.Minute
	}
	return c
}

// Result is what an attempt on a target came to, for its health.
type Result int

const (
	Success     Result = iota
	Failure            // a failure another target might not have (5xx, refused, timeout)
	RateLimited        // 429: cool down for Retry-After, not a fault
	AuthFailure        // the provider rejected the credential
	Neutral            // the client's fault (400, content filter): says nothing of the target
)

// targetHealth is one target's state. A target is in one of three states:
// admitted; ejected (or cooling) until a time; half-open after that, where
// it takes probes until enough succeed.
type targetHealth struct {
	consecutive int
	window      []outcome // recent results, oldest first
	until       time.Time // ejected or cooling until
	ejections   int       // for growing ejections; reset by a clean re-admission
	halfOpen    bool
	probes      int // successes so far in half-open
	inFlight    int // probes running in half-open
	reason      string
	outages     []Outage // the last day's ejections and cool-downs, oldest first
}

// Outage is a time a target was out of plans (ejected or cooling).
type Outage struct {
	From, Until time.Time
}

// maxOutages bounds the outages kept per target.
const maxOutages = 1024

// out records [now, until) as an outage, merged with the last when they touch.
func (th *targetHealth) out(now, until time.Time) {
	if n := len(th.outages); n > 0 && !now.After(th.outages[n-1].Until) {
		if until.After(th.outages[n-1].Until) {
			th.outages[n-1].Until = until
		}
		return
	}
	th.outages = append(th.outages, Outage{From: now, Until: until})
	for len(th.outages) > maxOutages || (len(th.outages) > 0 && now.Sub(th.outages[0].Until) > 24*time.Hour) {
		th.outages = th.outages[1:]
	}
}

type outcome struct {
	at time.Time
	ok bool
}

// Health tracks every target's state. Safe for concurrent use.
type Health struct {
	cfg     HealthConfig
	now     func() time.Time
	jitter  func() float64 // in [0,1)
	mu      sync.Mutex
	targets map[Target]*targetHealth
	// OnChange, if set, is told when a target is ejected or re-admitted.
	OnChange func(t Target, state, reason string, until time.Time)
}

// NewHealth builds a tracker; now and jitter may be nil.
func NewHealth(cfg HealthConfig, now func() time.Time, jitter func() float64) *Health {
	if now == nil {
		now = time.Now
	}
	if jitter == nil {
		jitter = rand.Float64
	}
	return &Health{cfg: cfg.withDefaults(), now: now, jitter: jitter, targets: map[Target]*targetHealth{}}
}

func (h *Health) get(t Target) *targetHealth {
	th := h.targets[t]
	if th == nil {
		th = &targetHealth{}
		h.targets[t] = th
	}
	return th
}

// Admit reports whether a request may go to t now; when it may not, how long
// until it might. In half-open it lets one probe at a time through.
func (h *Health) Admit(t Target) (bool, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.get(t)
	now := h.now()
	if now.Before(th.until) {
		return false, th.until.Sub(now)
	}
	if th.halfOpen {
		if th.inFlight > 0 {
			return false, 100 * time.Millisecond
		}
		th.inFlight++
	}
	return true, 0
}

// Done releases what Admit took; call it with the attempt's result.
func (h *Health) Done(t Target, r Result, retryAfter time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.get(t)
	now := h.now()
	if th.halfOpen && th.inFlight > 0 {
		th.inFlight--
	}
	switch r {
	case Neutral:
		return
	case RateLimited:
		if retryAfter <= 0 {
			retryAfter = time.Second
		}
		th.until = now.Add(retryAfter)
		th.out(now, th.until)
		h.changed(t, "cooling", "rate limited", th.until)
		return
	case AuthFailure:
		th.until, th.halfOpen, th.probes = now.Add(h.cfg.CredentialEjection), true, 0
		th.out(now, th.until)
		h.changed(t, "ejected", "credential rejected", th.until)
		return
	}
	ok := r == Success
	th.window = append(th.window, outcome{now, ok})
	for len(th.window) > 0 && now.Sub(th.window[0].at) > h.cfg.Window {
		th.window = th.window[1:]
	}
	if th.halfOpen {
		if !ok {
			h.eject(t, th, now, "failed its probe")
			return
		}
		th.probes++
		if th.probes >= h.cfg.Probes {
			th.halfOpen, th.probes, th.ejections, th.consecutive, th.window = false, 0, 0, 0, nil
			h.changed(t, "admitted", "probes succeeded", time.Time{})
		}
		return
	}
	if ok {
		th.consecutive = 0
		return
	}
	th.consecutive++
	failures := 0
	for _, o := range th.window {
		if !o.ok {
			failures++
		}
	}
	switch {
	case th.consecutive >= h.cfg.ConsecutiveFailures:
		h.eject(t, th, now, "consecutive failures")
	case len(th.window) >= h.cfg.MinRequests && float64(failures)/float64(len(th.window)) >= h.cfg.FailureRate:
		h.eject(t, th, now, "failure rate")
	}
}

// eject takes a target out for a time that doubles with each repeat, capped,
// with ±20% jitter so targets ejected together do not return together.
func (h *Health) eject(t Target, th *targetHealth, now time.Time, reason string) {
	d := h.cfg.BaseEjection << min(th.ejections, 16)
	d = min(d, h.cfg.MaxEjection)
	d = time.Duration(float64(d) * (0.8 + 0.4*h.jitter()))
	th.ejections++
	th.until, th.halfOpen, th.probes, th.consecutive, th.window = now.Add(d), true, 0, 0, nil
	th.out(now, th.until)
	h.changed(t, "ejected", reason, th.until)
}

func (h *Health) changed(t Target, state, reason string, until time.Time) {
	if h.OnChange != nil {
		h.OnChange(t, state, reason, until)
	}
}

// State describes a target for status pages and tests.
func (h *Health) State(t Target) (state string, until time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.get(t)
	switch {
	case h.now().Before(th.until):
		return "ejected", th.until
	case th.halfOpen:
		return "half-open", time.Time{}
	}
	return "healthy", time.Time{}
}

// Outages returns a target's recorded outages (the last day's).
func (h *Health) Outages(t Target) []Outage {
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.targets[t]
	if th == nil {
		return nil
	}
	return append([]Outage(nil), th.outages...)
}

// Forget drops what is known of a provider's targets: its credentials were
// replaced, and their positions may now name other keys.
func (h *Health) Forget(provider string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t := range h.targets {
		if t.Provider == provider {
			delete(h.targets, t)
		}
	}
}
