package router

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Policy orders a route's targets for one request. The first target is
// tried first; the rest follow as fallbacks. An implementation must not
// modify ts; it returns a new slice (or ts itself, unchanged).
type Policy interface {
	Order(req *Request, ts []Target) []Target
}

// Explainer is a Policy that also says why it ordered a request's
// targets so; the reason goes into the plan and the request record.
type Explainer interface {
	Policy
	Explain(req *Request, ts []Target) ([]Target, string)
}

// Listed keeps the configured order.
type Listed struct{}

func (Listed) Order(_ *Request, ts []Target) []Target { return ts }

// Weighted splits traffic by weight: each request starts on a target drawn
// with probability proportional to its weight, the others following in an
// order drawn the same way. A weight of 0 makes a target fallback-only.
type Weighted struct {
	Weights []float64 // one per target of the route
	// Rand draws in [0,1); nil uses math/rand/v2.
	Rand func() float64
}

// Order draws keys u^(1/w) and sorts largest first (Efraimidis–Spirakis).
func (w *Weighted) Order(_ *Request, ts []Target) []Target {
	if len(w.Weights) != len(ts) {
		return ts
	}
	draw := w.Rand
	if draw == nil {
		draw = rand.Float64
	}
	keys := make([]float64, len(ts))
	idx := make([]int, len(ts))
	for i := range ts {
		idx[i] = i
		if w.Weights[i] > 0 {
			keys[i] = math.Pow(draw(), 1/w.Weights[i])
		} else {
			keys[i] = -1 // fallback only
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] > keys[idx[b]] })
	out := make([]Target, len(ts))
	for i, j := range idx {
		out[i] = ts[j]
	}
	return out
}

// exploreShare is the share of latency-ordered requests that keep the
// configured order, so a demoted target that recovered is measured again.
const exploreShare = 0.05

// Fastest puts the target with the lowest learned median latency first:
// time to first token for streams, time to a whole answer otherwise.
// Targets not yet learned go first, to be learned.
type Fastest struct {
	Learned *Learned
	// Explore draws in [0,1); nil uses math/rand/v2.
	Explore func() float64
}

func (f *Fastest) Order(req *Request, ts []Target) []Target {
	explore := f.Explore
	if explore == nil {
		explore = rand.Float64
	}
	if explore() < exploreShare {
		return ts
	}
	lat := f.Learned.Answers
	if req.Stream {
		lat = f.Learned.TTFT
	}
	type keyed struct {
		t   Target
		p50 time.Duration
	}
	ks := make([]keyed, len(ts))
	for i, t := range ts {
		p50, _ := lat.P50(t) // 0 until learned
		ks[i] = keyed{t, p50}
	}
	sort.SliceStable(ks, func(i, j int) bool { return ks[i].p50 < ks[j].p50 })
	out := make([]Target, len(ks))
	for i, k := range ks {
		out[i] = k.t
	}
	return out
}
