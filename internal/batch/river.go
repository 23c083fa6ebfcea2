package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
)

// queueName is the River queue batch items run on.
const queueName = "tidegate_batch"

// itemArgs is one batch item's job.
type itemArgs struct {
	Batch string `json:"batch"`
	Line  int    `json:"line"`
}

func (itemArgs) Kind() string { return "tidegate_batch_item" }

// InsertOpts: unique by batch and line, so an item queued again after a
// crash is one job.
func (itemArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// maxAttempts bounds retries of an item whose calls keep failing
// transiently; the last attempt's failure is its result.
const maxAttempts = 8

type itemWorker struct {
	river.WorkerDefaults[itemArgs]
	e       *Executor
	timeout time.Duration
}

func (w *itemWorker) Work(ctx context.Context, job *river.Job[itemArgs]) error {
	err := w.e.RunItem(ctx, job.Args.Batch, job.Args.Line, job.Attempt >= job.MaxAttempts)
	if errors.Is(err, ErrNotReady) {
		return river.JobSnooze(200 * time.Millisecond)
	}
	if errors.Is(err, ErrGateShut) {
		return river.JobSnooze(time.Second)
	}
	if errors.Is(err, ErrRetry) && job.Attempt < job.MaxAttempts {
		return err
	}
	if errors.Is(err, ErrRetry) {
		return river.JobSnooze(time.Second) // the gate was shut: wait, at no cost of an attempt
	}
	return err
}

// NextRetry backs off linearly: a batch has hours, not days.
func (w *itemWorker) NextRetry(job *river.Job[itemArgs]) time.Time {
	return time.Now().Add(time.Duration(job.Attempt) * 2 * time.Second)
}

func (w *itemWorker) Timeout(*river.Job[itemArgs]) time.Duration { return w.timeout }

// RiverConfig tunes the job queue.
type RiverConfig struct {
	// Workers is how many items a process runs at once at most (the Gate
	// may admit fewer).
	Workers int
	// ItemTimeout bounds one attempt of an item; a job running longer than
	// twice that (its process died) is rescued and run again.
	ItemTimeout time.Duration
	// RescueOrphans makes running jobs available again at start: right
	// only when this process is the queue's one worker (SQLite), whose
	// running jobs at start were cut by a crash.
	RescueOrphans func(ctx context.Context) error
	Logger        *slog.Logger
}

// riverQueue enqueues items on a River client.
type riverQueue[TTx any] struct{ c *river.Client[TTx] }

func (q riverQueue[TTx]) Enqueue(ctx context.Context, items []Item) error {
	const chunk = 1000
	for start := 0; start < len(items); start += chunk {
		part := items[start:min(start+chunk, len(items))]
		params := make([]river.InsertManyParams, len(part))
		for i, it := range part {
			params[i] = river.InsertManyParams{Args: itemArgs{Batch: it.BatchID, Line: it.Line}}
		}
		if _, err := q.c.InsertMany(ctx, params); err != nil {
			return fmt.Errorf("batch: queue: %w", err)
		}
	}
	return nil
}

// StartRiver starts a client working batch items for e and sets e.Queue;
// River's tables are migrated before (MigrateRiver, or checked with
// CheckRiver under --no-migrate). stop ends the client: running items are
// given until ctx ends to finish, then cancelled (they run again later).
func StartRiver[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], e *Executor, cfg RiverConfig) (stop func(context.Context) error, err error) {
	if cfg.RescueOrphans != nil {
		if err := cfg.RescueOrphans(ctx); err != nil {
			return nil, fmt.Errorf("batch: rescuing orphaned items: %w", err)
		}
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &itemWorker{e: e, timeout: cfg.ItemTimeout})
	c, err := river.NewClient(driver, &river.Config{
		Logger:               cfg.Logger,
		Queues:               map[string]river.QueueConfig{queueName: {MaxWorkers: max(cfg.Workers, 1)}},
		Workers:              workers,
		JobTimeout:           cfg.ItemTimeout,
		RescueStuckJobsAfter: 2 * cfg.ItemTimeout,
		FetchCooldown:        50 * time.Millisecond,
		FetchPollInterval:    500 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("batch: river: %w", err)
	}
	e.Queue = riverQueue[TTx]{c}
	if err := c.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("batch: river: %w", err)
	}
	return func(ctx context.Context) error {
		if err := c.Stop(ctx); err == nil {
			return nil
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.StopAndCancel(cctx)
	}, nil
}

// SQLiteRescue makes the batch queue's running jobs available again: for
// the SQLite store, whose one process is starting, so any job still
// running was cut by a crash (River's own rescuer would wait for
// RescueStuckJobsAfter).
const SQLiteRescue = `UPDATE river_job SET state = 'available' WHERE state = 'running' AND queue = '` + queueName + `'`
