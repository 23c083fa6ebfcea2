package app

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/console"
	"github.com/tidegate/tidegate/internal/load"
)

// The console's pool chart: a sample every 10 s over a day, drawn in at
// most poolChartPoints points.
const (
	poolSampleEvery = 10 * time.Second
	poolSampleSpan  = 24 * time.Hour
	poolChartPoints = 360
	consoleBatches  = 50 // the newest shown
)

// batchLister lists and reads batches (the store).
type batchLister interface {
	Batches(ctx context.Context, q batch.ListQuery) ([]batch.Batch, error)
	Batch(ctx context.Context, id string) (*batch.Batch, error)
}

// batchCanceller cancels a batch (batch.Executor).
type batchCanceller interface {
	Cancel(ctx context.Context, id string) (*batch.Batch, error)
}

// consolePool is the console's PoolSource: the load tracker's targets now,
// their sampled history, and the batches through the store and executor.
type consolePool struct {
	loads   *load.Tracker
	history *load.History
	batches batchLister    // nil: batches disabled
	cancel  batchCanceller // nil: batches disabled
}

func (p consolePool) Pool(ctx context.Context, scope console.Scope) (console.PoolReport, error) {
	var rep console.PoolReport
	if scope.All && p.loads != nil {
		for _, r := range p.loads.Reports() {
			name := r.Target.String()
			t := console.PoolTarget{Target: name, Accelerator: r.Accelerator, Running: r.Load.Running, Waiting: r.Load.Waiting,
				KVCache: r.Load.KVCache, InFlight: r.Load.InFlight, CostPerMTokens: r.Forecast.CostPerMTokens, Share: r.Share,
				Fresh: r.Load.Fresh}
			t.Utilization = math.NaN()
			if u, ok := r.Utilization(); ok {
				t.Utilization = u
			}
			for _, s := range p.history.Series(name, poolChartPoints) {
				t.Series = append(t.Series, console.PoolPoint{At: s.At, Utilization: s.Utilization, Queue: s.Queue})
			}
			rep.Targets = append(rep.Targets, t)
		}
	}
	if p.batches == nil {
		return rep, nil
	}
	bs, err := p.batches.Batches(ctx, batch.ListQuery{All: scope.All, ProjectID: scope.ProjectID, Limit: consoleBatches})
	if err != nil {
		return rep, err
	}
	for _, b := range bs {
		rep.Batches = append(rep.Batches, console.Batch{ID: b.ID, Status: string(b.Status), Endpoint: b.Endpoint,
			Completed: b.Counts.Completed, Failed: b.Counts.Failed, Total: b.Counts.Total, CreatedAt: b.CreatedAt})
	}
	return rep, nil
}

// CancelBatch cancels through the executor, as POST /v1/batches/{id}/cancel
// does; another project's batch is not found, as on the API.
func (p consolePool) CancelBatch(ctx context.Context, scope console.Scope, id string) error {
	if p.batches == nil {
		return console.ErrNoBatch
	}
	b, err := p.batches.Batch(ctx, id)
	if errors.Is(err, batch.ErrNotFound) || err == nil && !scope.All && b.ProjectID != scope.ProjectID {
		return console.ErrNoBatch
	}
	if err != nil {
		return err
	}
	_, err = p.cancel.Cancel(ctx, id)
	var nc *batch.NotCancellableError
	if errors.As(err, &nc) {
		return &console.CancelRefused{Reason: nc.Error()}
	}
	return err
}
