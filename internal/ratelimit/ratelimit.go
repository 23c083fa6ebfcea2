// Package ratelimit counts a key's requests per minute (rpm), tokens per
// minute (tpm) and open streams (max_streams). A Backend keeps the counts:
// in memory for one replica, in Redis or PostgreSQL for several. The
// Limiter in front of a shared backend renews stream leases, announces the
// replica, and when the backend fails answers by its policy without
// waiting on it (see Policy).
package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Limits are one key's limits; 0 means none.
type Limits struct {
	RPM, TPM, MaxStreams int64
}

// Verdict is a backend's answer to one admission.
type Verdict struct {
	// Limit names the limit reached ("rpm", "tpm", "max_streams"); "" admits.
	Limit string
	// Wait is when the request would be admitted again.
	Wait time.Duration
}

// Backend keeps counts. Admit is atomic: it checks every limit and, only
// when all pass, counts the request (and takes the stream lease when lease
// is not "") in one step. Leases expire after leaseTTL unless renewed, so
// the slots of a dead replica come back.
type Backend interface {
	Admit(ctx context.Context, key string, l Limits, lease string, leaseTTL time.Duration) (Verdict, error)
	// Done adds tokens to the key's tpm window and frees lease ("": none).
	Done(ctx context.Context, key string, tokens int64, lease string) error
	// Renew pushes the expiry of live leases (lease id → key) leaseTTL ahead.
	Renew(ctx context.Context, leases map[string]string, leaseTTL time.Duration) error
	// Heartbeat announces replica as alive and reports how many are.
	Heartbeat(ctx context.Context, replica string, ttl time.Duration) (int, error)
}

// Policy is what a Limiter does while its shared backend is unreachable.
type Policy string

const (
	// Divide counts on this replica alone, each limit divided by the
	// replicas last seen alive (rounded up): the default.
	Divide Policy = "divide"
	// Open admits every request.
	Open Policy = "open"
	// Closed refuses every limited request (503 limits_unavailable).
	Closed Policy = "closed"
)

// Unavailable is the Verdict.Limit of a request refused under Closed.
const Unavailable = "unavailable"

// Config tunes a Limiter. Zero fields take defaults.
type Config struct {
	Policy Policy
	// Timeout bounds each call to the shared backend (default 200ms): a
	// slow backend costs a request at most this before the policy applies.
	Timeout time.Duration
	// LeaseTTL is how long a stream slot outlives a dead replica (default 30s).
	LeaseTTL time.Duration
	// Window is what rpm and tpm count over (default 1m; tests shorten it).
	Window time.Duration
	// Retry is how long after a failure the shared backend is skipped
	// before it is tried again (default 2s).
	Retry time.Duration
}

func (c *Config) defaults() {
	if c.Policy == "" {
		c.Policy = Divide
	}
	if c.Timeout <= 0 {
		c.Timeout = 200 * time.Millisecond
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.Retry <= 0 {
		c.Retry = 2 * time.Second
	}
}

// Limiter admits requests against a backend. With a shared backend it
// falls back per Config.Policy while the backend fails.
type Limiter struct {
	shared Backend // nil: local only
	local  *Memory
	cfg    Config
	logger *slog.Logger
	id     string // this replica, in heartbeats

	mu        sync.Mutex
	leases    map[string]string // live shared leases: id → key
	replicas  int               // alive at the last heartbeat
	downUntil time.Time         // skip the shared backend until then
	down      bool              // the outage was logged
}

// NewLocal counts on this replica only.
func NewLocal(window time.Duration, now func() time.Time) *Limiter {
	cfg := Config{Window: window}
	cfg.defaults()
	return &Limiter{local: NewMemory(cfg.Window, now), cfg: cfg, logger: slog.New(slog.DiscardHandler), replicas: 1}
}

// NewShared counts in shared and falls back per cfg.Policy. Run keeps its
// leases and heartbeat.
func NewShared(shared Backend, cfg Config, logger *slog.Logger) *Limiter {
	cfg.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Limiter{shared: shared, local: NewMemory(cfg.Window, nil), cfg: cfg, logger: logger,
		id: newID("replica"), leases: map[string]string{}, replicas: 1}
}

// Ticket is an admitted request; Done ends it. The zero Ticket is valid.
type Ticket struct {
	l       *Limiter
	backend Backend
	key     string
	lease   string
	once    *sync.Once
}

// Done counts the request's tokens and frees its stream slot; later calls
// do nothing.
func (t Ticket) Done(tokens int64) {
	if t.l == nil {
		return
	}
	t.once.Do(func() { t.l.done(t, tokens) })
}

// Admit counts one request of key; stream asks for a stream slot too.
func (l *Limiter) Admit(ctx context.Context, key string, lim Limits, stream bool) (Ticket, Verdict) {
	if lim == (Limits{}) {
		return Ticket{}, Verdict{}
	}
	lease := ""
	if stream && lim.MaxStreams > 0 {
		lease = newID("lease")
	}
	if l.shared != nil && l.sharedUp() {
		cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
		v, err := l.shared.Admit(cctx, key, lim, lease, l.cfg.LeaseTTL)
		cancel()
		if err == nil {
			l.recovered()
			if v.Limit != "" {
				return Ticket{}, v
			}
			if lease != "" {
				l.mu.Lock()
				l.leases[lease] = key
				l.mu.Unlock()
			}
			return Ticket{l: l, backend: l.shared, key: key, lease: lease, once: new(sync.Once)}, v
		}
		if ctx.Err() != nil { // the client left: no verdict to give
			return Ticket{}, Verdict{Limit: Unavailable, Wait: time.Second}
		}
		l.failed(err)
	}
	if l.shared != nil {
		switch l.cfg.Policy {
		case Open:
			return Ticket{}, Verdict{}
		case Closed:
			return Ticket{}, Verdict{Limit: Unavailable, Wait: l.cfg.Retry}
		}
		lim = l.share(lim)
	}
	v, _ := l.local.Admit(ctx, key, lim, lease, localLease) // memory never fails
	if v.Limit != "" {
		return Ticket{}, v
	}
	return Ticket{l: l, backend: l.local, key: key, lease: lease, once: new(sync.Once)}, v
}

// share divides each limit by the replicas last seen alive, rounding up
// so that a limit stays at least 1.
func (l *Limiter) share(lim Limits) Limits {
	l.mu.Lock()
	n := int64(max(l.replicas, 1))
	l.mu.Unlock()
	div := func(v int64) int64 {
		if v <= 0 {
			return v
		}
		return (v + n - 1) / n
	}
	return Limits{RPM: div(lim.RPM), TPM: div(lim.TPM), MaxStreams: div(lim.MaxStreams)}
}

func (l *Limiter) done(t Ticket, tokens int64) {
	if t.backend == Backend(l.local) {
		_ = l.local.Done(context.Background(), t.key, tokens, t.lease)
		return
	}
	if t.lease != "" {
		l.mu.Lock()
		delete(l.leases, t.lease)
		l.mu.Unlock()
	}
	if tokens <= 0 && t.lease == "" {
		return
	}
	// Its own context: the request's may be gone, and the tokens still count.
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	if err := t.backend.Done(ctx, t.key, tokens, t.lease); err != nil {
		// A lease left behind expires within LeaseTTL; the tokens are lost
		// to tpm (they are billed all the same).
		l.failed(err)
	}
}

func (l *Limiter) sharedUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !time.Now().Before(l.downUntil)
}

// failed marks the shared backend down for cfg.Retry, logging the outage once.
func (l *Limiter) failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.downUntil = time.Now().Add(l.cfg.Retry)
	if !l.down {
		l.down = true
		l.logger.Error("rate limit store unreachable; limits fall back", "policy", string(l.cfg.Policy),
			"replicas", l.replicas, "error", err)
	}
}

func (l *Limiter) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		l.down = false
		l.logger.Info("rate limit store reachable again; limits shared across replicas")
	}
}

// Replicas is how many replicas the last heartbeat saw (1 before one).
func (l *Limiter) Replicas() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.replicas
}

// Run renews this replica's stream leases and heartbeat until ctx ends.
// Only a shared Limiter needs it.
func (l *Limiter) Run(ctx context.Context) {
	if l.shared == nil {
		return
	}
	every := l.cfg.LeaseTTL / 3
	for {
		l.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// tick is one renewal and heartbeat.
func (l *Limiter) tick(ctx context.Context) {
	l.mu.Lock()
	leases := make(map[string]string, len(l.leases))
	for id, k := range l.leases {
		leases[id] = k
	}
	l.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, max(l.cfg.Timeout, time.Second))
	defer cancel()
	var errs []error
	if len(leases) > 0 {
		errs = append(errs, l.shared.Renew(cctx, leases, l.cfg.LeaseTTL))
	}
	n, err := l.shared.Heartbeat(cctx, l.id, l.cfg.LeaseTTL)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() == nil {
			l.failed(err)
		}
		return
	}
	l.mu.Lock()
	l.replicas = max(n, 1)
	l.downUntil = time.Time{} // the backend answered: try it again at once
	l.mu.Unlock()
	l.recovered()
}

// localLease is a local stream slot's lease: its holder is this process,
// which frees it on every path, so it need not expire.
const localLease = 100 * 365 * 24 * time.Hour

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// BucketWidth is the width of one of the 60 buckets a window is counted in.
func BucketWidth(window time.Duration) time.Duration {
	return max(window/60, time.Millisecond)
}

// ParsePolicy reads a policy name; "" is Divide.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return Divide, nil
	case Divide, Open, Closed:
		return p, nil
	}
	return "", fmt.Errorf("want divide, open or closed, got %q", s)
}
