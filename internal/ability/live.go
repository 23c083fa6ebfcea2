package ability

import (
	"errors"
	"math"
	"time"

	"github.com/tidegate/tidegate/internal/router"
)

// Feedback is a client's verdict on one of its answers (POST /v1/feedback).
type Feedback struct {
	RequestID string    `json:"request_id"`
	KeyID     string    `json:"-"`
	ProjectID string    `json:"-"`
	Route     string    `json:"route"`  // the public model asked for; "" when unknown
	Target    string    `json:"target"` // provider/model that answered
	Score     float64   `json:"score"`
	CreatedAt time.Time `json:"created_at"`
}

// ErrNoRequest: no traffic request of that id is visible to the caller.
var ErrNoRequest = errors.New("no such request")

// Live quality: each target's recent verdicts on its routed answers
// (feedback scores and shadow agreement), a rolling window. A target whose
// window holds at least liveMin verdicts with a mean under the route's bar
// (Bar × the best target's held-out quality) is demoted: it no longer counts
// as passing the threshold, so its prompts go to the next target that does,
// or to the best. A new eval run (new results) clears it all.
const (
	liveWindow = 200
	liveMin    = 20
)

// window is a ring of the last liveWindow scores.
type window struct {
	scores [liveWindow]float64
	n, at  int
	sum    float64
}

func (w *window) add(s float64) {
	if w.n == liveWindow {
		w.sum -= w.scores[w.at]
	} else {
		w.n++
	}
	w.scores[w.at] = s
	w.sum += s
	w.at = (w.at + 1) % liveWindow
}

func (w *window) mean() float64 { return w.sum / float64(w.n) }

// Observe records a verdict in [0, 1] on an answer t gave on this route;
// other numbers are refused (false), as are targets not on the route.
func (r *Route) Observe(t router.Target, score float64) bool {
	t.Credential = ""
	i := -1
	for k, rt := range r.Targets {
		if rt == t {
			i = k
		}
	}
	if i < 0 || math.IsNaN(score) || score < 0 || score > 1 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live == nil {
		r.live = make([]window, len(r.Targets))
	}
	w := &r.live[i]
	w.add(score)
	st := r.state.Load()
	if st == nil || w.n < liveMin || st.demoted[i] {
		return true
	}
	if bar := r.Bar * st.cal.Best; w.mean() < bar {
		r.logger().Warn("ability route live quality below the bar: prompts move to a stronger target",
			"route", r.Name, "target", t.String(), "live", w.mean(), "bar", bar, "verdicts", w.n)
		next := *st
		next.demoted = append([]bool(nil), st.demoted...)
		next.demoted[i] = true
		r.state.Store(&next)
	}
	return true
}

// LiveQuality is the route's live quality estimate: the mean of every
// target's window, and how many verdicts it holds (0: no estimate).
func (r *Route) LiveQuality() (float64, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum, n := 0.0, 0
	for _, w := range r.live {
		sum, n = sum+w.sum, n+w.n
	}
	if n == 0 {
		return 0, 0
	}
	return sum / float64(n), n
}

// LiveReport is a route's live quality for metrics and status.
type LiveReport struct {
	Route    string  `json:"route"`
	Quality  float64 `json:"quality"`  // mean verdict, 0–1
	Verdicts int     `json:"verdicts"` // in the rolling windows; 0: no estimate
	Demoted  int     `json:"demoted"`  // targets moved away from for low live quality
}

// Live reports the route's live quality.
func (r *Route) Live() LiveReport {
	q, n := r.LiveQuality()
	return LiveReport{Route: r.Name, Quality: q, Verdicts: n, Demoted: len(r.Demoted())}
}

// Demoted lists the targets live quality moved prompts away from.
func (r *Route) Demoted() []router.Target {
	st := r.state.Load()
	if st == nil {
		return nil
	}
	var out []router.Target
	for i, d := range st.demoted {
		if d {
			out = append(out, r.Targets[i])
		}
	}
	return out
}

// Best is the target with the best held-out quality; false before results.
func (r *Route) Best() (router.Target, bool) {
	st := r.state.Load()
	if st == nil || st.cal.BestTarget < 0 || st.cal.BestTarget >= len(r.Targets) {
		return router.Target{}, false
	}
	return r.Targets[st.cal.BestTarget], true
}
