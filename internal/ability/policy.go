package ability

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/router"
)

// Results is where a policy reads a suite's per-item results: the store.
type Results interface {
	EvalResults(ctx context.Context, suite string) ([]eval.ItemResult, error)
}

// CostFunc is a target's cost per token in one unit for all targets (a
// blend of its input and output price); false when it has no price.
type CostFunc func(t router.Target) (float64, bool)

// Route is an ability route's ordering policy (a router.Explainer). Until
// it has learned from results it keeps the configured order.
type Route struct {
	Name    string
	Suite   string
	Bar     float64 // the quality bar: a fraction of the best target's quality
	Targets []router.Target
	Results Results  // nil: only Teach teaches it
	Cost    CostFunc // nil: every target costs the same
	Logger  *slog.Logger
	Seed    uint64

	state atomic.Pointer[state]

	mu      sync.Mutex // one refresh at a time
	learned *Learned
	seen    uint64   // fingerprint of the results learned from
	live    []window // per target: recent verdicts on its answers
}

// state is what choosing reads, swapped whole.
type state struct {
	w    []float32 // the models' weights interleaved: w[i*len(bias)+c]
	bias []float32 // per target with a model
	col  []int     // target index → index in ws, -1 without a model
	cost []float64 // per target
	cal  Calibration
	from *Learned
	// demoted: targets whose live quality fell below the bar (live.go).
	demoted []bool
}

func (s *state) learnedFrom(l *Learned) bool { return s.from == l }

// Order implements router.Policy.
func (r *Route) Order(req *router.Request, ts []router.Target) []router.Target {
	out, _ := r.order(req, ts, false)
	return out
}

// Explain implements router.Explainer.
func (r *Route) Explain(req *router.Request, ts []router.Target) ([]router.Target, string) {
	return r.order(req, ts, true)
}

// scratch holds a choice's per-target numbers; pooled so choosing
// allocates only the plan it returns.
type scratch struct {
	dot []float32
	p   []float64
	idx []int
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (r *Route) order(req *router.Request, ts []router.Target, explain bool) ([]router.Target, string) {
	st := r.state.Load()
	if st == nil || len(ts) != len(st.col) || len(req.Messages) == 0 {
		if explain && st == nil {
			return ts, "ability " + r.Suite + ": no eval results yet; configured order"
		}
		return ts, ""
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	sc.dot = slices.Grow(sc.dot[:0], len(st.bias))[:len(st.bias)]
	sc.p = slices.Grow(sc.p[:0], len(ts))[:len(ts)]
	sc.idx = slices.Grow(sc.idx[:0], len(ts))[:len(ts)]
	dots(PromptText(req.Messages), st.w, len(st.bias), sc.dot)
	for t := range ts {
		sc.idx[t] = t
		if c := st.col[t]; c >= 0 {
			sc.p[t] = sigmoid(float64(sc.dot[c] + st.bias[c]))
		} else {
			sc.p[t] = math.NaN()
		}
	}
	rank(sc.idx, sc.p, st.cost, st.cal.Tau, st.cal.BestTarget, st.demoted)
	out := make([]router.Target, len(ts))
	for k, t := range sc.idx {
		out[k] = ts[t]
	}
	if !explain {
		return out, ""
	}
	return out, r.reason(ts, sc, st)
}

// rank orders target indexes: those whose p reaches tau by cost (cheapest
// first), then the best target, then the rest by p (likeliest first), then
// those without a prediction, as configured. Its first is choose's choice.
// A demoted target never counts as reaching tau.
func rank(idx []int, p, cost []float64, tau float64, best int, demoted []bool) {
	key := func(t int) (group int) {
		switch {
		case math.IsNaN(p[t]):
			return 3
		case p[t] >= tau && (demoted == nil || !demoted[t]):
			return 0
		case t == best:
			return 1
		}
		return 2
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ta, tb := idx[a], idx[b]
		ga, gb := key(ta), key(tb)
		switch {
		case ga != gb:
			return ga < gb
		case ga == 0:
			return cost[ta] < cost[tb]
		case ga == 2:
			return p[ta] > p[tb]
		}
		return false
	})
}

func (r *Route) reason(ts []router.Target, sc *scratch, st *state) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ability %s: chose %s; bar %.2f of best, threshold %.2f;", r.Suite, ts[sc.idx[0]], r.Bar, st.cal.Tau)
	for t := range ts {
		b.WriteString(" ")
		b.WriteString(ts[t].String())
		b.WriteString(" p=")
		if math.IsNaN(sc.p[t]) {
			b.WriteString("unknown")
		} else {
			b.WriteString(strconv.FormatFloat(sc.p[t], 'f', 2, 64))
		}
		b.WriteString(" cost=")
		b.WriteString(strconv.FormatFloat(st.cost[t], 'g', 3, 64))
		if st.demoted[t] {
			b.WriteString(" demoted by live quality")
		}
		b.WriteString(";")
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Teach learns from results now (what a refresh does with the store's).
func (r *Route) Teach(results []eval.ItemResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.learn(results)
	r.publish()
}

// Refresh reads the suite's results and the targets' prices: new results
// retrain the models, and new results or prices recalibrate the threshold.
func (r *Route) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Results != nil {
		res, err := r.Results.EvalResults(ctx, r.Suite)
		if err != nil {
			return fmt.Errorf("ability route %s: results of suite %s: %w", r.Name, r.Suite, err)
		}
		// No done run yet says nothing new: what the route learned (taught
		// directly, or from an earlier read) stays until a run replaces it.
		if len(res) > 0 {
			r.learn(res)
		}
	}
	r.publish()
	return nil
}

// Run refreshes every interval until ctx ends: how a new eval run, a new
// price or a recovered store reaches the route with no restart.
func (r *Route) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.logger().Warn("ability route refresh failed", "route", r.Name, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *Route) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Route) names() []string {
	out := make([]string, len(r.Targets))
	for i, t := range r.Targets {
		out[i] = t.String()
	}
	return out
}

// learn retrains when the results differ from those last learned.
func (r *Route) learn(res []eval.ItemResult) {
	fp := fingerprint(res)
	if r.learned != nil && fp == r.seen {
		return
	}
	names := r.names()
	d := Table(res, names)
	r.seen = fp
	r.live = nil // a new eval run says anew what each target is worth
	if len(d.X) == 0 {
		r.learned = nil
		return
	}
	r.learned = Learn(d, names, r.Seed)
	r.logger().Info("ability route learned", "route", r.Name, "suite", r.Suite, "items", len(d.X))
}

func fingerprint(res []eval.ItemResult) uint64 {
	h := fnv.New64a()
	for _, x := range res {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%g\x00", x.RunID, x.ItemID, x.Model, x.Score)
	}
	return h.Sum64()
}

// publish recalibrates on the current prices and swaps the state in.
func (r *Route) publish() {
	l := r.learned
	if l == nil {
		r.state.Store(nil)
		return
	}
	cost := r.costs()
	if old := r.state.Load(); old != nil && old.learnedFrom(l) && slices.Equal(old.cost, cost) {
		return
	}
	st := &state{col: make([]int, len(l.Models)), cost: cost, cal: l.Calibrate(cost, r.Bar), demoted: make([]bool, len(l.Models))}
	if old := r.state.Load(); old != nil && old.learnedFrom(l) {
		st.demoted = old.demoted // a new price keeps live quality's verdict
	}
	var ms []*Logistic
	for t, m := range l.Models {
		st.col[t] = -1
		if m != nil {
			st.col[t] = len(ms)
			ms = append(ms, m)
			st.bias = append(st.bias, m.B)
		}
	}
	st.w = make([]float32, Dim*len(ms))
	for c, m := range ms {
		for i, x := range m.W {
			st.w[i*len(ms)+c] = x
		}
	}
	st.from = l
	r.state.Store(st)
	r.logger().Info("ability route calibrated", "route", r.Name, "threshold", st.cal.Tau, "met", st.cal.Met,
		"quality", st.cal.Quality, "best", st.cal.Best, "cost", st.cal.Cost)
}

// costs is each target's cost; an unpriced one counts as the dearest
// priced (never taken for cheap), and all alike when none is priced.
func (r *Route) costs() []float64 {
	cost := make([]float64, len(r.Targets))
	var missing []int
	dearest := 0.0
	for i, t := range r.Targets {
		c, ok := 0.0, false
		if r.Cost != nil {
			c, ok = r.Cost(t)
		}
		if !ok || math.IsNaN(c) || c < 0 || math.IsInf(c, 0) {
			missing = append(missing, i)
			continue
		}
		cost[i] = c
		dearest = max(dearest, c)
	}
	if dearest == 0 {
		dearest = 1
	}
	for _, i := range missing {
		cost[i] = dearest
	}
	return cost
}

// Calibration is the threshold in force and what it achieved on held-out
// folds; false before any results.
func (r *Route) Calibration() (Calibration, bool) {
	st := r.state.Load()
	if st == nil {
		return Calibration{}, false
	}
	return st.cal, true
}
