package console

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/tidegate/tidegate/internal/status"
)

// StatusSource is the live state of the targets (status.Tracker).
type StatusSource interface {
	Report() status.Report
	DaySeries() map[string][]status.Point
}

// PoolSource reports the self-hosted pool and batches. The pool and the
// Batch API are wired in by their own work; until then the page says no
// pool is configured.
type PoolSource interface {
	Pool(ctx context.Context) (PoolReport, error)
	// CancelBatch cancels a batch; an error's text is shown to the operator.
	CancelBatch(ctx context.Context, id string) error
}

// PoolReport is the pool's state: targets with their load over time (the
// tide) and the batches.
type PoolReport struct {
	Targets []PoolTarget
	Batches []Batch
}

// PoolTarget is one self-hosted backend.
type PoolTarget struct {
	Target      string
	Accelerator string
	Utilization float64 // 0–1, now
	Queue       float64 // requests waiting, now
	Series      []PoolPoint
}

// PoolPoint is a target's load at a time.
type PoolPoint struct {
	At          time.Time
	Utilization float64
	Queue       float64
}

// Batch is one batch job's progress.
type Batch struct {
	ID        string
	Status    string
	Done      int
	Failed    int
	Total     int
	CreatedAt time.Time
}

type providersData struct {
	Report   status.Report
	Requests chart
	TTFT     chart
}

// seriesCharts turns each target's buckets into two charts on one time
// axis: requests per five minutes and TTFT p50.
func seriesCharts(series map[string][]status.Point, now time.Time) (req, ttft chart) {
	day := &[2]int64{now.Add(-24 * time.Hour).Unix(), now.Unix()}
	req = chart{Title: "Requests per 5 minutes, last day", Unit: "requests", Range: day}
	ttft = chart{Title: "Time to first token, p50 (streams)", Unit: "ms", Range: day}
	xs := map[int64]bool{}
	for _, ps := range series {
		for _, p := range ps {
			xs[p.At.Unix()] = true
		}
	}
	req.X = slices.Sorted(maps.Keys(xs))
	ttft.X = req.X
	for _, name := range slices.Sorted(maps.Keys(series)) {
		at := map[int64]status.Point{}
		for _, p := range series[name] {
			at[p.At.Unix()] = p
		}
		rs, ts := make([]*float64, len(req.X)), make([]*float64, len(req.X))
		for i, x := range req.X {
			p := at[x]
			rs[i] = num(float64(p.Requests))
			if p.TTFTP50 > 0 { // whole answers have no first token
				ts[i] = num(p.TTFTP50)
			}
		}
		req.Series, req.Ys = append(req.Series, name), append(req.Ys, rs)
		ttft.Series, ttft.Ys = append(ttft.Series, name), append(ttft.Ys, ts)
	}
	return req, ttft
}

func (c *Console) providers(w http.ResponseWriter, r *http.Request) {
	var d providersData
	if c.cfg.Status != nil {
		d.Report = c.cfg.Status.Report()
		d.Requests, d.TTFT = seriesCharts(c.cfg.Status.DaySeries(), c.cfg.Now())
	}
	c.render(w, r, http.StatusOK, "providers", "Providers", d)
}

type poolData struct {
	Configured bool
	Report     PoolReport
	Util       chart
	Queue      chart
	Err        string
}

func (d poolData) errorText() string { return d.Err }

func (c *Console) pool(w http.ResponseWriter, r *http.Request) {
	var d poolData
	if c.cfg.Pool != nil {
		rep, err := c.cfg.Pool.Pool(r.Context())
		if err != nil {
			c.internal(w, r, err)
			return
		}
		d.Configured, d.Report = true, rep
		d.Util, d.Queue = tideCharts(rep.Targets)
	}
	c.render(w, r, http.StatusOK, "pool", "Pool and batches", d)
}

func tideCharts(ts []PoolTarget) (util, queue chart) {
	util = chart{Title: "Utilization", Unit: "%"}
	queue = chart{Title: "Queue", Unit: "requests"}
	xs := map[int64]bool{}
	for _, t := range ts {
		for _, p := range t.Series {
			xs[p.At.Unix()] = true
		}
	}
	util.X = slices.Sorted(maps.Keys(xs))
	queue.X = util.X
	for _, t := range ts {
		at := map[int64]PoolPoint{}
		for _, p := range t.Series {
			at[p.At.Unix()] = p
		}
		us, qs := make([]*float64, len(util.X)), make([]*float64, len(util.X))
		for i, x := range util.X {
			if p, ok := at[x]; ok {
				us[i], qs[i] = num(100*p.Utilization), num(p.Queue)
			}
		}
		util.Series, util.Ys = append(util.Series, t.Target), append(util.Ys, us)
		queue.Series, queue.Ys = append(queue.Series, t.Target), append(queue.Ys, qs)
	}
	return util, queue
}

func (c *Console) cancelBatch(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Pool == nil {
		c.notFound(w, r, nil)
		return
	}
	if err := c.cfg.Pool.CancelBatch(r.Context(), r.PathValue("id")); err != nil {
		c.render(w, r, http.StatusBadRequest, "pool", "Pool and batches", poolData{Configured: true, Err: err.Error()})
		return
	}
	http.Redirect(w, r, "/console/pool", http.StatusSeeOther)
}
