package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Pinger is a dependency readiness checks: the store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Readiness answers GET /readyz: may this replica take new work? It is
// unauthenticated, so it says what is wrong in a word, never why in
// detail (a database error can name hosts and users); the log has the rest.
// /healthz (liveness) stays 200 while the process serves at all: a replica
// whose database is away must not be restarted for it, only taken out of
// the load balancer.
type Readiness struct {
	// Store is pinged; nil: no store to check.
	Store Pinger
	// ConfigLoaded is set once the config is read and validated and
	// everything built from it is up; until then the replica is not ready.
	ConfigLoaded atomic.Bool
	// Timeout bounds one ping; 0: defaultReadyTimeout.
	Timeout time.Duration
	// Now is the clock of the ping cache; nil: time.Now.
	Now func() time.Time

	draining atomic.Bool

	mu       sync.Mutex // one ping at a time; the others reuse its answer
	pingedAt time.Time
	pingErr  error
}

const (
	// defaultReadyTimeout is short: a probe that waits longer than the
	// kubelet's own timeout (1s by default) reads as a failure anyway.
	defaultReadyTimeout = 800 * time.Millisecond
	// pingReuse is how long a ping's answer serves later probes, so that
	// many callers of an unauthenticated route cost the database one
	// round trip a second at most.
	pingReuse = time.Second
)

// StartDraining marks the replica as leaving: /readyz answers 503 from
// now on, so load balancers stop sending it work while it finishes what
// it has. It cannot be undone: a draining process exits.
func (r *Readiness) StartDraining() { r.draining.Store(true) }

// Draining reports whether StartDraining was called.
func (r *Readiness) Draining() bool { return r.draining.Load() }

// readyReport is /readyz's body.
type readyReport struct {
	Status string            `json:"status"`           // "ready" or "not_ready"
	Reason string            `json:"reason,omitempty"` // the first failed check, in a few words
	Checks map[string]string `json:"checks"`           // each check: "ok" or what failed
}

// check runs the checks, store last: a draining replica or one without its
// config does not touch the database.
func (r *Readiness) check(ctx context.Context) (readyReport, error) {
	rep := readyReport{Status: "ready", Checks: map[string]string{}}
	fail := func(check, reason string) {
		rep.Checks[check] = reason
		if rep.Status == "ready" {
			rep.Status, rep.Reason = "not_ready", check+": "+reason
		}
	}
	if r.draining.Load() {
		fail("draining", "shutting down")
	} else {
		rep.Checks["draining"] = "no"
	}
	if !r.ConfigLoaded.Load() {
		fail("config", "not loaded")
	} else {
		rep.Checks["config"] = "ok"
	}
	if r.Store == nil || rep.Status != "ready" {
		return rep, nil
	}
	if err := r.ping(ctx); err != nil {
		fail("store", "unreachable")
		return rep, err
	}
	rep.Checks["store"] = "ok"
	return rep, nil
}

// ping pings the store, or reuses an answer younger than pingReuse.
func (r *Readiness) ping(ctx context.Context) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.pingedAt.IsZero() && now().Sub(r.pingedAt) < pingReuse {
		return r.pingErr
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = defaultReadyTimeout
	}
	// Not the probe's context: a caller that hangs up must not leave a
	// cancelled ping cached as an outage for the next second.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	r.pingErr = r.Store.Ping(pctx)
	r.pingedAt = now()
	return r.pingErr
}

// readyz serves GET /readyz: 200 when ready, else 503, both with the report.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rep := readyReport{Status: "ready", Checks: map[string]string{}}
	var err error
	if s.Ready != nil {
		rep, err = s.Ready.check(r.Context())
	}
	if err != nil {
		s.Logger.Warn("not ready", "reason", rep.Reason, "error", err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if rep.Status != "ready" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}
