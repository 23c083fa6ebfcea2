package console

import (
	"context"
	"errors"
	"maps"
	"math"
	"net/http"
	"slices"
	"time"
)

// PoolSource reports the self-hosted pool and the batches (app wires it
// from the load tracker, its history and the batch executor).
type PoolSource interface {
	// Pool is the pool's targets (asked only for the master key) and the
	// batches scope may see.
	Pool(ctx context.Context, scope Scope) (PoolReport, error)
	// CancelBatch cancels a batch scope may see: one it may not see is
	// ErrNoBatch, one that has ended a *CancelRefused.
	CancelBatch(ctx context.Context, scope Scope, id string) error
}

// ErrNoBatch is a batch that does not exist for the asking scope.
var ErrNoBatch = errors.New("no such batch")

// CancelRefused is a cancel the batch's state refuses (it has ended); its
// reason is shown to the visitor. Other errors are logged, not shown.
type CancelRefused struct{ Reason string }

func (e *CancelRefused) Error() string { return e.Reason }

// Scope is whose things a page shows: everything (the master key) or one
// project's.
type Scope struct {
	All       bool
	ProjectID string
}

func scopeOf(s *session) Scope { return Scope{All: s.master, ProjectID: s.projectID} }

// PoolReport is the pool's state: targets with their load over time (the
// tide) and the batches.
type PoolReport struct {
	Targets []PoolTarget
	Batches []Batch
}

// PoolTarget is one self-hosted backend now, and its load over time.
type PoolTarget struct {
	Target      string
	Accelerator string
	Running     int
	Waiting     int     // the server's own queue
	KVCache     float64 // 0–1; negative: not reported
	InFlight    int     // tidegate's calls open on it
	Utilization float64 // 0–1; NaN: not reported
	// CostPerMTokens is in CNY over the throughput it has shown; 0: not
	// shown yet.
	CostPerMTokens float64
	Share          float64 // of the attempts on self-hosted targets
	Fresh          bool    // its own signals are recent
	Series         []PoolPoint
}

// PoolPoint is a target's load at a time; Utilization NaN: not reported.
type PoolPoint struct {
	At          time.Time
	Utilization float64
	Queue       float64
}

// Batch is one batch job's progress.
type Batch struct {
	ID        string
	Status    string
	Endpoint  string
	Completed int64
	Failed    int64
	Total     int64
	CreatedAt time.Time
}

// Done is the requests answered, well or not.
func (b Batch) Done() int64 { return b.Completed + b.Failed }

// Cancellable reports whether a cancel can still stop the batch.
func (b Batch) Cancellable() bool { return b.Status == "validating" || b.Status == "in_progress" }

type poolData struct {
	Configured bool
	Master     bool
	Report     PoolReport
	Util       chart
	Queue      chart
	Err        string
}

func (d poolData) errorText() string { return d.Err }

func (c *Console) poolPage(w http.ResponseWriter, r *http.Request, status int, errText string) {
	sess := sessionFrom(r)
	d := poolData{Master: sess.master, Err: errText}
	if c.cfg.Pool != nil {
		rep, err := c.cfg.Pool.Pool(r.Context(), scopeOf(sess))
		if err != nil {
			c.internal(w, r, err)
			return
		}
		if !sess.master {
			rep.Targets = nil // the pool is the operator's; a project sees its batches
		}
		d.Configured, d.Report = true, rep
		d.Util, d.Queue = tideCharts(rep.Targets)
	}
	title := "Pool and batches"
	if !sess.master {
		title = "Batches"
	}
	c.render(w, r, status, "pool", title, d)
}

func (c *Console) pool(w http.ResponseWriter, r *http.Request) { c.poolPage(w, r, http.StatusOK, "") }

// tideCharts puts every target's utilization and queue on one time axis.
func tideCharts(ts []PoolTarget) (util, queue chart) {
	util = chart{Title: "Utilization", Unit: "%"}
	queue = chart{Title: "Queue (peak)", Unit: "requests"}
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
			p, ok := at[x]
			if !ok {
				continue
			}
			if !math.IsNaN(p.Utilization) && !math.IsInf(p.Utilization, 0) {
				us[i] = num(100 * p.Utilization)
			}
			if !math.IsNaN(p.Queue) && !math.IsInf(p.Queue, 0) {
				qs[i] = num(p.Queue)
			}
		}
		util.Series, util.Ys = append(util.Series, t.Target), append(util.Ys, us)
		queue.Series, queue.Ys = append(queue.Series, t.Target), append(queue.Ys, qs)
	}
	return util, queue
}

// cancelBatch cancels a batch of the session's scope (the master key's:
// any); another project's is 404, as on the API.
func (c *Console) cancelBatch(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Pool == nil {
		c.notFound(w, r, nil)
		return
	}
	err := c.cfg.Pool.CancelBatch(r.Context(), scopeOf(sessionFrom(r)), r.PathValue("id"))
	var refused *CancelRefused
	switch {
	case errors.Is(err, ErrNoBatch):
		c.notFound(w, r, nil)
	case errors.As(err, &refused):
		c.poolPage(w, r, http.StatusBadRequest, refused.Reason)
	case err != nil:
		c.internal(w, r, err)
	default:
		http.Redirect(w, r, "/console/pool", http.StatusSeeOther)
	}
}
