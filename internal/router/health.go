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
	Forgive             time.Duration // clean service that forgives one ejection level; default 2m
	// PanicShare is the least recent success share (smoothed) that earns an
	// ejected target a panic pass; default 0.25. A brown-out keeps serving
	// what its upstreams can, a dead fleet gets no attempt at all.
	PanicShare float64
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
	if c.PanicShare <= 0 {
		c.PanicShare = 0.25
	}
	if c.Forgive <= 0 {
		c.Forgive = 2 * time.Minute
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

// Pass is one admission, handed back to Done with the attempt's result. It
// remembers the state it was admitted under, so a call that was already in
// flight when its target was ejected cannot count as that ejection's probe.
//
// A Pass made by hand, Pass{Target: t}, reports a result no admission covers
// (a stream that broke after its admission was returned): it counts while the
// target is admitted and can never extend an ejection.
type Pass struct {
	Target Target
	// Cooling, on a refusal, says the target is out only because it is
	// cooling after a 429: a rate limit, not a fault.
	Cooling bool
	gen     uint64 // the target's generation at admission; 0: made by hand
	probe   bool   // the half-open probe: its result decides re-admission
	panic   bool   // admitted out of ejection by Panic: its result moves no state
}

// targetHealth is one target's state. A target is in one of three states:
// admitted; ejected (or cooling) until a time; half-open after an ejection,
// where it takes one probe at a time until enough succeed.
type targetHealth struct {
	gen         uint64 // changes at every ejection and re-admission
	consecutive int
	window      []outcome // recent results, oldest first; emptied at re-admission
	until       time.Time // ejected until (failures or a rejected credential)
	coolUntil   time.Time // cooling after a 429 until
	credential  bool      // the ejection is for a rejected credential
	ejections   int       // ejection level: the next ejection lasts Base << ejections
	cleanSince  time.Time // last re-admission: clean service since forgives levels
	halfOpen    bool
	probes      int      // successes so far in half-open
	inFlight    int      // probes running in half-open
	outages     []Outage // the last day's ejections and cool-downs, oldest first
}

// back is when the target may take requests again.
func (th *targetHealth) back() time.Time {
	if th.coolUntil.After(th.until) {
		return th.coolUntil
	}
	return th.until
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

// record adds a result to the window and drops what has aged out of it.
func (th *targetHealth) record(now time.Time, ok bool, window time.Duration) {
	th.window = append(th.window, outcome{now, ok})
	for len(th.window) > 0 && now.Sub(th.window[0].at) > window {
		th.window = th.window[1:]
	}
}

// Health tracks every target's state. Safe for concurrent use.
type Health struct {
	cfg     HealthConfig
	now     func() time.Time
	jitter  func() float64 // in [0,1)
	mu      sync.Mutex
	gens    uint64 // generations are unique across targets, so a Pass outlives Forget safely
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
		th = &targetHealth{gen: h.nextGen()}
		h.targets[t] = th
	}
	return th
}

func (h *Health) nextGen() uint64 {
	h.gens++
	return h.gens
}

// Admit reports whether a request may go to t now, with the Pass to hand to
// Done; when it may not, how long until it might. In half-open it lets one
// probe at a time through.
func (h *Health) Admit(t Target) (Pass, bool, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.get(t)
	now := h.now()
	if back := th.back(); now.Before(back) {
		return Pass{Target: t, Cooling: !now.Before(th.until)}, false, back.Sub(now)
	}
	p := Pass{Target: t, gen: th.gen}
	if th.halfOpen {
		if th.inFlight > 0 {
			return Pass{}, false, 100 * time.Millisecond
		}
		th.inFlight++
		p.probe = true
	}
	return p, true, 0
}

// Done releases what Admit (or Panic) took; call it with the attempt's result.
// Only the current probe's own result re-admits or re-ejects a target: calls
// admitted before an ejection count toward its window, never toward another
// ejection, so one burst of failures is one ejection.
func (h *Health) Done(p Pass, r Result, retryAfter time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := p.Target
	th := h.get(t)
	now := h.now()
	current := p.gen == 0 || p.gen == th.gen
	if p.probe && current && th.inFlight > 0 {
		th.inFlight--
	}
	switch r {
	case Neutral:
		return
	case RateLimited:
		if retryAfter <= 0 {
			retryAfter = time.Second
		}
		// Only ever later: a late 429 from an old call must not shorten a cool-down.
		if until := now.Add(retryAfter); until.After(th.coolUntil) {
			th.coolUntil = until
			th.out(now, until)
			h.changed(t, "cooling", "rate limited", until)
		}
		return
	case AuthFailure:
		if th.credential && now.Before(th.until) {
			return // already out for it; the calls of the same burst say nothing new
		}
		h.goOut(th, now, now.Add(h.cfg.CredentialEjection))
		th.credential = true
		h.changed(t, "ejected", "credential rejected", th.until)
		return
	}
	ok := r == Success
	th.record(now, ok, h.cfg.Window)
	switch {
	case p.panic, now.Before(th.until):
		// Served in a brown-out, or finished after its target was ejected:
		// it ranks the target for Panic and cannot extend the ejection.
		return
	case th.halfOpen:
		if !p.probe || !current {
			return
		}
		if !ok {
			h.eject(t, th, now, "failed its probe")
			return
		}
		th.probes++
		if th.probes >= h.cfg.Probes {
			th.halfOpen, th.probes, th.consecutive, th.window, th.credential = false, 0, 0, nil, false
			th.gen, th.cleanSince = h.nextGen(), now
			h.changed(t, "admitted", "probes succeeded", time.Time{})
		}
		return
	}
	if ok {
		th.consecutive = 0
		return
	}
	th.consecutive++
	if !current {
		return // admitted before the last re-admission: it counts, but may not eject
	}
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
//
// The level is not reset when probes re-admit the target, or a flapping
// target would be out for the base time again and again; instead each
// Forgive of clean service since its last re-admission forgives one level.
func (h *Health) eject(t Target, th *targetHealth, now time.Time, reason string) {
	if !th.halfOpen && !th.cleanSince.IsZero() {
		th.ejections = max(0, th.ejections-int(now.Sub(th.cleanSince)/h.cfg.Forgive))
	}
	d := h.cfg.BaseEjection << min(th.ejections, 16)
	d = min(d, h.cfg.MaxEjection)
	d = time.Duration(float64(d) * (0.8 + 0.4*h.jitter()))
	th.ejections = min(th.ejections+1, 16)
	h.goOut(th, now, now.Add(d))
	th.credential = false
	h.changed(t, "ejected", reason, th.until)
}

// goOut ejects th until a time, to half-open after it, in a new generation:
// every call admitted before is now an old one.
func (h *Health) goOut(th *targetHealth, now, until time.Time) {
	if until.After(th.until) {
		th.until = until
	}
	th.halfOpen, th.probes, th.inFlight, th.consecutive = true, 0, 0, 0
	th.gen, th.cleanSince = h.nextGen(), time.Time{}
	th.out(now, th.until)
}

func (h *Health) changed(t Target, state, reason string, until time.Time) {
	if h.OnChange != nil {
		h.OnChange(t, state, reason, until)
	}
}

// Admissible counts the targets of ts that Admit would let through now,
// taking nothing: a planner compares it with len(ts) to decide on Panic.
func (h *Health) Admissible(ts []Target) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	n := 0
	for _, t := range ts {
		th := h.targets[t]
		if th == nil || (!now.Before(th.back()) && (!th.halfOpen || th.inFlight == 0)) {
			n++
		}
	}
	return n
}

// Panic admits the least bad of the targets of ts that are out for failures
// (ejected, or half-open with their probe running), for a route too many of
// whose targets are out: a brown-out then still serves what its upstreams
// can, as Envoy's panic threshold does. Never a target whose credential was
// rejected, nor one cooling after a 429: those would fail for certain.
//
// The least bad has the highest success share in the window, counted as
// (successes+1)/(calls+2) so a target with no recent calls ranks as even;
// ties go to the one back soonest, then to the earlier in ts. The Pass's
// result ranks its target but never re-admits or re-ejects it. False when
// no target of ts qualifies.
func (h *Health) Panic(ts []Target) (Pass, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	var best *targetHealth
	var pick Pass
	var bestShare float64
	for _, t := range ts {
		th := h.targets[t]
		if th == nil || th.credential || now.Before(th.coolUntil) {
			continue
		}
		ejected := now.Before(th.until)
		if !ejected && !(th.halfOpen && th.inFlight > 0) {
			continue // admissible: Admit's, not Panic's
		}
		share := th.share(now, h.cfg.Window)
		if share < h.cfg.PanicShare {
			continue // failing nearly always: an attempt would only add load
		}
		if best == nil || share > bestShare || (share == bestShare && th.back().Before(best.back())) {
			best, bestShare = th, share
			pick = Pass{Target: t, gen: th.gen, panic: true}
		}
	}
	return pick, best != nil
}

// share is the smoothed share of successes among the results of the last window.
func (th *targetHealth) share(now time.Time, window time.Duration) float64 {
	ok, n := 0, 0
	for _, o := range th.window {
		if now.Sub(o.at) > window {
			continue
		}
		n++
		if o.ok {
			ok++
		}
	}
	return float64(ok+1) / float64(n+2)
}

// State describes a target for status pages and tests.
func (h *Health) State(t Target) (state string, until time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.get(t)
	switch back := th.back(); {
	case h.now().Before(back):
		return "ejected", back
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
