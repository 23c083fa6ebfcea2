// Package tide is the tidal dispatcher: a batch.Gate that sends batch
// items to a route's self-hosted targets only while they have room that
// online work does not need, and to hosted targets in their off-peak
// windows (or when the batch's window would otherwise be missed).
package tide

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/load"
	"github.com/tidegate/tidegate/internal/router"
)

// Routes lists the targets a batch line's model may use (router.Router).
type Routes interface {
	Targets(model string) ([]router.Target, error)
}

// Loads is the self-hosted targets' live load (load.Tracker).
type Loads interface {
	Tracks(provider string) bool
	Snapshot(t router.Target) load.Load
}

// Prices says whether a hosted target's catalog price at `at` is an
// off-peak one (the ledger catalog's when=offpeak rows).
type Prices interface {
	OffPeak(t router.Target, at time.Time) bool
}

// Config configures a Gate.
type Config struct {
	Routes Routes
	Loads  Loads
	// Prices finds hosted targets' off-peak windows; nil: none have any.
	Prices Prices
	// SLO is a route's time-to-first-token goal (ttft_slo), 0: DefaultSLO.
	SLO func(route string) time.Duration
	// HostedConcurrency bounds items in flight on one hosted target
	// (default 8).
	HostedConcurrency int
	// Rescue is the last share of a batch's window in which hosted targets
	// take items at any price (default 0.25: the last 6 hours of 24).
	Rescue float64
	// MaxWait is how long Acquire waits for room before it gives the item
	// back to the queue (default 10s); Poll how often a waiting item looks
	// again (default 100ms; a released item wakes waiters at once).
	MaxWait, Poll time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// DefaultSLO is the online time-to-first-token goal of a route without one.
const DefaultSLO = time.Second

// Fill-level control (see Gate).
const (
	startLevel  = 0.9  // share of capacity batch + online may fill at first
	minLevel    = 0.3  // the lowest it is cut to
	cutFactor   = 0.75 // a congestion cuts the level by this factor...
	cutCooldown = time.Second
	raisePerSec = 0.05 // ...and each quiet second raises it by this much
	growth      = 1.25 // online may grow by this factor over an item's time
	// unknownCapacity stands for the capacity of a server that has not
	// shown it (no KV-cache share, never queued).
	unknownCapacity = 8
	// maxUntracked bounds the targets the gate keeps state for that the
	// load tracker does not track (hosted ones, names clients made up):
	// beyond it, such a target's state lives while it holds items.
	maxUntracked = 256
)

// Gate admits batch items (batch.Gate). For a self-hosted target of
// capacity C (learned by the load tracker), the batch may hold
//
//	floor(level × C) − ceil(growth × online peak) − reserve
//
// sequences, where the online peak is the most online sequences seen on it
// (tidegate's online calls in flight, live, plus other clients' work at the
// last scrape) over the last batch item's duration, and the reserve is
// max(1, 10% of C): room for online arrivals before the next decision.
// Every Acquire reads the live counts, so the gate stops sending within a
// poll (100 ms) of online load rising; items already out finish (a
// sequence cannot be preempted from outside the server).
//
// The level is learned from the target's own signals: it starts at 0.9,
// is cut by a quarter (at most once a second, to 0.3 at least) when online
// work shows congestion — the server queues while batch items run, or
// online calls' recent 90th-percentile time to first token rises above
// the learned unqueued one by more than a tenth of the route's SLO (or a
// fifth of the unqueued one, if more) — and
// rises by 0.05 each quiet second, to 1. The item is steered to the
// target with the most room (gateway.WithTarget).
//
// Hosted targets (those whose load is not read) take items when the
// catalog prices them off-peak now; when it has no off-peak window for
// them before the batch's window ends and the route has no self-hosted
// target; or, at any price, in the last Rescue share of the window.
type Gate struct {
	cfg Config

	mu        sync.Mutex
	targets   map[router.Target]*targetState
	untracked int           // of targets, those the load tracker does not track
	changed   chan struct{} // closed (and replaced) when an item is released
}

type targetState struct {
	held      int // items admitted and not yet released
	level     float64
	lastCut   time.Time
	lastRaise time.Time
	samples   []sample // online sequences seen, recent first dropped
	itemSecs  float64  // moving average of an item's time held
	// last decision, for metrics
	limit, online int
	admitted      int64
	// transient: kept only while it holds items (see maxUntracked).
	transient bool
}

type sample struct {
	at     time.Time
	online int
}

// New makes a gate.
func New(cfg Config) *Gate {
	if cfg.HostedConcurrency <= 0 {
		cfg.HostedConcurrency = 8
	}
	if cfg.Rescue <= 0 || cfg.Rescue > 1 {
		cfg.Rescue = 0.25
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 10 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Gate{cfg: cfg, targets: map[router.Target]*targetState{}, changed: make(chan struct{})}
}

// Acquire waits until some target of a.Route has room for the item, and
// steers the item there.
func (g *Gate) Acquire(ctx context.Context, a batch.Ask) (context.Context, func(), error) {
	ts, err := g.cfg.Routes.Targets(a.Route)
	if err != nil {
		// The gateway answers it (model_not_found): the error file says so.
		return ctx, func() {}, nil
	}
	giveUp := time.NewTimer(g.cfg.MaxWait)
	defer giveUp.Stop()
	poll := time.NewTicker(g.cfg.Poll)
	defer poll.Stop()
	for {
		t, st, changed, ok := g.admit(a, ts)
		if ok {
			return gateway.WithTarget(ctx, t), g.releaser(t, st), nil
		}
		select {
		case <-ctx.Done():
			return ctx, nil, ctx.Err()
		case <-giveUp.C:
			return ctx, nil, batch.ErrNoRoom
		case <-changed:
		case <-poll.C:
		}
	}
}

func (g *Gate) releaser(t router.Target, st *targetState) func() {
	start := g.cfg.Now()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			st.held--
			if st.transient && st.held == 0 {
				delete(g.targets, t)
			}
			secs := g.cfg.Now().Sub(start).Seconds()
			if st.itemSecs == 0 {
				st.itemSecs = secs
			} else {
				st.itemSecs += 0.2 * (secs - st.itemSecs)
			}
			close(g.changed)
			g.changed = make(chan struct{})
			g.mu.Unlock()
		})
	}
}

// state is t's state, made on first look; tracked says the load tracker
// tracks t. An untracked target beyond maxUntracked gets a transient state,
// kept (by admit) only while it holds items: clients choose those names.
func (g *Gate) state(t router.Target, tracked bool) *targetState {
	if st := g.targets[t]; st != nil {
		return st
	}
	st := &targetState{level: startLevel}
	switch {
	case tracked:
	case g.untracked < maxUntracked:
		g.untracked++
	default:
		st.transient = true
		return st
	}
	g.targets[t] = st
	return st
}

// admit takes room for one item on the best target of ts, if any has it;
// else it returns the channel that a release closes.
func (g *Gate) admit(a batch.Ask, ts []router.Target) (router.Target, *targetState, <-chan struct{}, bool) {
	now := g.cfg.Now()
	slo := DefaultSLO
	if g.cfg.SLO != nil {
		if s := g.cfg.SLO(a.Route); s > 0 {
			slo = s
		}
	}
	// Read the loads before taking the gate's lock: the tracker has its own.
	type cand struct {
		t router.Target
		l load.Load
	}
	var self, hosted []cand
	for _, t := range ts {
		t.Credential = ""
		if g.cfg.Loads != nil && g.cfg.Loads.Tracks(t.Provider) {
			self = append(self, cand{t, g.cfg.Loads.Snapshot(t)})
		} else {
			hosted = append(hosted, cand{t, load.Load{}})
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var bestSt *targetState
	best, bestRoom := router.Target{}, 0
	for _, c := range self {
		st := g.state(c.t, c.l.Tracked)
		if room := st.room(c.l, slo, now); room > bestRoom {
			best, bestSt, bestRoom = c.t, st, room
		}
	}
	if bestRoom == 0 {
		for _, c := range hosted {
			st := g.state(c.t, false)
			if st.held < g.cfg.HostedConcurrency && g.hostedOpen(c.t, a, len(self) > 0, now) {
				best, bestSt, bestRoom = c.t, st, 1
				break
			}
		}
	}
	if bestRoom == 0 {
		return router.Target{}, nil, g.changed, false
	}
	if bestSt.transient {
		g.targets[best] = bestSt // while it holds the item
	}
	bestSt.held++
	bestSt.admitted++
	return best, bestSt, nil, true
}

// hostedOpen reports whether a hosted target takes batch items now.
func (g *Gate) hostedOpen(t router.Target, a batch.Ask, hasSelfHosted bool, now time.Time) bool {
	if g.cfg.Prices != nil && g.cfg.Prices.OffPeak(t, now) {
		return true
	}
	window := a.Expires.Sub(a.Created)
	if a.Expires.IsZero() || window <= 0 {
		return !hasSelfHosted
	}
	left := a.Expires.Sub(now)
	if float64(left) < g.cfg.Rescue*float64(window) {
		return true // the window would otherwise be missed
	}
	if hasSelfHosted {
		return false // the route's own cards take the batch in their troughs
	}
	// Only hosted targets: wait for an off-peak window if one opens while
	// there is still time (before the rescue part of the window).
	return !g.offPeakBefore(t, now, a.Expires.Add(-time.Duration(g.cfg.Rescue*float64(window))))
}

// offPeakBefore reports whether t's catalog price turns off-peak between
// from and until, looked at every 15 minutes (the catalog's windows start
// on the half hour at the finest).
func (g *Gate) offPeakBefore(t router.Target, from, until time.Time) bool {
	if g.cfg.Prices == nil {
		return false
	}
	for at := from; at.Before(until); at = at.Add(15 * time.Minute) {
		if g.cfg.Prices.OffPeak(t, at) {
			return true
		}
	}
	return false
}

// room is how many more batch items the target takes now (see Gate).
func (st *targetState) room(l load.Load, slo time.Duration, now time.Time) int {
	batchNow := max(st.held, l.BatchInFlight)
	online := max(l.InFlight-l.BatchInFlight, 0) + l.Others
	st.online = online
	// Keep the online sequences seen over the last item's time (2 s at
	// least), so an item sent now leaves room for a return to that peak.
	window := time.Duration(max(st.itemSecs, 2) * float64(time.Second))
	st.samples = append(st.samples, sample{now, online})
	drop := 0
	for drop < len(st.samples)-1 && now.Sub(st.samples[drop].at) > window {
		drop++
	}
	st.samples = st.samples[drop:]
	peak := 0
	for _, s := range st.samples {
		peak = max(peak, s.online)
	}
	st.learn(l, batchNow, slo, now)
	c, reserve := l.Capacity, 0
	if c == 0 {
		// Capacity not learned (no KV-cache share, never queued): a few
		// sequences beside online work, while the server does not queue.
		c = unknownCapacity
	} else {
		reserve = max(1, int(math.Ceil(0.1*float64(c))))
	}
	st.limit = max(int(st.level*float64(c))-int(math.Ceil(growth*float64(peak)))-reserve, 0)
	return max(st.limit-batchNow, 0)
}

// learn moves the fill level: cut on congestion, raised when quiet.
func (st *targetState) learn(l load.Load, batchNow int, slo time.Duration, now time.Time) {
	// Only while batch items run there: a slowdown without them is not
	// the batch's to answer for. The tolerance is a tenth of the SLO or a
	// fifth of the unqueued first token, whichever is larger, so a busy
	// machine's stalls on a slow-to-prefill model do not read as a queue.
	congested := l.Fresh && l.Waiting > 0 && batchNow > 0
	if tol := max(slo/10, l.BaseTTFT/5); batchNow > 0 && l.OnlineSeen >= 3 && l.BaseTTFT > 0 && l.OnlineTTFT > l.BaseTTFT+tol {
		congested = true
	}
	switch {
	case congested && now.Sub(st.lastCut) >= cutCooldown:
		st.level = max(st.level*cutFactor, minLevel)
		st.lastCut, st.lastRaise = now, now
	case !congested && now.Sub(st.lastRaise) >= time.Second && now.Sub(st.lastCut) >= cutCooldown:
		if !st.lastRaise.IsZero() {
			st.level = min(st.level+raisePerSec*now.Sub(st.lastRaise).Seconds(), 1)
		}
		st.lastRaise = now
	}
}

// Report is one target's state in the gate, for metrics and status.
type Report struct {
	Target router.Target
	// Held is batch items out on it now; Limit the most the gate would let
	// it hold at its last decision; Online the online sequences it saw then.
	Held, Limit, Online int
	// Level is the learned fill level (share of capacity).
	Level    float64
	Admitted int64
}

// Reports lists every target the gate has looked at.
func (g *Gate) Reports() []Report {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Report, 0, len(g.targets))
	for t, st := range g.targets {
		out = append(out, Report{Target: t, Held: st.held, Limit: st.limit, Online: st.online, Level: st.level, Admitted: st.admitted})
	}
	return out
}
