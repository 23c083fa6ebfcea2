package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/files"
)

// Store keeps files, batches and items (internal/store implements it).
type Store interface {
	PutFile(ctx context.Context, f *File) error
	Batch(ctx context.Context, id string) (*Batch, error)
	OpenBatches(ctx context.Context) ([]Batch, error)
	UpdateBatch(ctx context.Context, id string, from []Status, u Update) (bool, error)
	AddItems(ctx context.Context, items []Item) error
	Item(ctx context.Context, batchID string, line int) (*Item, error)
	Items(ctx context.Context, batchID string, afterLine, limit int) ([]Item, error)
	StartItem(ctx context.Context, batchID string, line int) (bool, error)
	RequeueItem(ctx context.Context, batchID string, line int) error
	FinishItem(ctx context.Context, batchID string, line int, r Result) (bool, error)
	EndPendingItems(ctx context.Context, batchID, code, message string) (int64, error)
	EndRunningItems(ctx context.Context, batchID, code, message string) (int64, error)
}

// Caller sends one item through the gateway's own call path (routing,
// budgets, billing to the batch's key). retry reports a failure worth
// another attempt later (overload, rate limit, timeout).
type Caller interface {
	Call(ctx context.Context, b *Batch, it *Item) (r Result, retry bool)
}

// Queue puts items on the job queue (River); an item already queued is
// not queued again.
type Queue interface {
	Enqueue(ctx context.Context, items []Item) error
}

// Executor runs batches: it validates a new batch's input file into items,
// queues them as jobs, runs each job (RunItem) through the Gate and the
// Caller, and finalizes a batch whose items are all answered into its
// output and error files. Every step can be repeated after a crash: an
// item's result is written once, and the files are built from the results.
type Executor struct {
	Store  Store
	Files  files.Storage
	Caller Caller
	// Gate admits items to a route; the default bounds concurrency.
	Gate  Gate
	Queue Queue
	// Keys re-checks the batch's key before each item; nil: not checked.
	Keys   KeyFinder
	Logger *slog.Logger
	// CheckBody checks a line's body as its endpoint would; nil: not checked.
	CheckBody func(url string, body []byte) error
	// Served reports whether a line's model is served; nil: not checked.
	Served func(model string) bool
	// MaxLine bounds one input line in bytes.
	MaxLine int
	// Poll is how often open batches are looked at; a finished item also
	// wakes the loop at once.
	Poll time.Duration
	// ItemTimeout bounds one attempt of an item (River's job timeout); an
	// item still running twice that long after its batch ended has no
	// attempt left behind it and is ended (see endLost). 0: 10 minutes.
	ItemTimeout time.Duration
	Now         func() time.Time

	wake chan struct{}
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Wake makes the loop look at open batches now (a batch was created or
// cancelled, an item finished).
func (e *Executor) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Init readies the executor before Run or RunItem.
func (e *Executor) Init() {
	e.wake = make(chan struct{}, 1)
	if e.Gate == nil {
		e.Gate = NewLimitGate(8)
	}
	if e.Poll <= 0 {
		e.Poll = time.Second
	}
}

// Run moves open batches along until ctx ends.
func (e *Executor) Run(ctx context.Context) {
	t := time.NewTicker(e.Poll)
	defer t.Stop()
	for {
		e.Step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.wake:
		}
	}
}

// Step looks at every open batch once.
func (e *Executor) Step(ctx context.Context) {
	open, err := e.Store.OpenBatches(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.Logger.Warn("batches: listing open batches failed", "error", err)
		}
		return
	}
	for i := range open {
		if err := e.step(ctx, &open[i]); err != nil && ctx.Err() == nil {
			e.Logger.Warn("batches: step failed", "batch", open[i].ID, "status", string(open[i].Status), "error", err)
		}
	}
}

func (e *Executor) step(ctx context.Context, b *Batch) error {
	switch b.Status {
	case Validating:
		return e.validate(ctx, b)
	case InProgress:
		if !e.now().Before(b.ExpiresAt) {
			if _, err := e.Store.EndPendingItems(ctx, b.ID, "batch_expired", "the batch expired before this request was sent"); err != nil {
				return err
			}
			if err := e.endLost(ctx, b, b.ExpiresAt, "batch_expired", "the batch expired before this request's answer was recorded"); err != nil {
				return err
			}
		} else if b.Counts.Open() > 0 {
			return nil
		}
		return e.finalize(ctx, b)
	case Cancelling:
		if _, err := e.Store.EndPendingItems(ctx, b.ID, "batch_cancelled", "the batch was cancelled before this request was sent"); err != nil {
			return err
		}
		ended := b.CancellingAt
		if ended.IsZero() || b.ExpiresAt.Before(ended) {
			ended = b.ExpiresAt
		}
		if err := e.endLost(ctx, b, ended, "batch_cancelled", "the batch was cancelled before this request's answer was recorded"); err != nil {
			return err
		}
		return e.finalize(ctx, b)
	case Finalizing:
		return e.finalize(ctx, b)
	}
	return nil
}

// endLost ends the items still running once no attempt of theirs can be
// live: an attempt lasts at most ItemTimeout and River rescues a stuck job
// after twice that, so past ended + 2×ItemTimeout a running item has no
// job behind it (killed on its last attempt, or its result failed to
// write) and would hold its batch open for ever.
func (e *Executor) endLost(ctx context.Context, b *Batch, ended time.Time, code, message string) error {
	if b.Counts.Running == 0 {
		return nil
	}
	timeout := e.ItemTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	if e.now().Before(ended.Add(2 * timeout)) {
		return nil
	}
	n, err := e.Store.EndRunningItems(ctx, b.ID, code, message)
	if err == nil && n > 0 {
		e.Logger.Warn("batches: ended items left running with no attempt behind them", "batch", b.ID, "items", n)
	}
	return err
}

// validate checks the input file against the batch (its endpoint, the
// key's allowlist) and turns it into queued items, or fails the batch
// with its errors and an error file.
func (e *Executor) validate(ctx context.Context, b *Batch) error {
	f, err := e.Files.Open(ctx, b.InputFileID)
	if errors.Is(err, files.ErrNotFound) {
		return e.fail(ctx, b, []LineError{{Code: "file_not_found", Message: "the input file " + b.InputFileID + " no longer exists"}})
	}
	if err != nil {
		return err
	}
	lines, problems, err := Parse(f, Check{Endpoint: b.Endpoint, Body: e.CheckBody, MaxLine: e.MaxLine, Allowed: allowed(b.Models), Served: e.Served})
	f.Close()
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return e.fail(ctx, b, problems)
	}
	items := make([]Item, len(lines))
	for i, l := range lines {
		items[i] = Item{BatchID: b.ID, Line: l.Number, CustomID: l.CustomID, Body: l.Body, State: ItemPending}
	}
	if err := e.Store.AddItems(ctx, items); err != nil {
		return err
	}
	if err := e.Queue.Enqueue(ctx, items); err != nil {
		return err
	}
	_, err = e.Store.UpdateBatch(ctx, b.ID, []Status{Validating}, Update{Status: InProgress, At: e.now()})
	return err
}

func allowed(models []string) func(string) bool {
	if len(models) == 0 {
		return nil
	}
	return func(m string) bool { return slices.Contains(models, m) }
}

// fail ends a batch that did not validate: its errors object names the
// lines, and its error file has one line per problem.
func (e *Executor) fail(ctx context.Context, b *Batch, problems []LineError) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, p := range problems {
		_ = enc.Encode(OutputLine{ID: LineID(b.ID, p.Line), CustomID: p.CustomID, Error: &OutputError{Code: p.Code, Message: p.Message}})
	}
	errFile, err := e.putOutput(ctx, b, "errors", &buf, int64(buf.Len()))
	if err != nil {
		return err
	}
	_, err = e.Store.UpdateBatch(ctx, b.ID, []Status{Validating}, Update{Status: Failed, At: e.now(), Errors: problems, ErrorFileID: errFile})
	return err
}

// outputFileID names a batch's output or error file: the same name each
// time, so a finalize repeated after a crash replaces its own file.
func outputFileID(batchID, kind string) string {
	return "file-" + strings.TrimPrefix(batchID, "batch_") + "-" + kind
}

func (e *Executor) putOutput(ctx context.Context, b *Batch, kind string, r io.Reader, size int64) (string, error) {
	id := outputFileID(b.ID, kind)
	if err := e.Files.Put(ctx, id, r, size); err != nil {
		return "", err
	}
	f := &File{ID: id, ProjectID: b.ProjectID, KeyID: b.KeyID, Purpose: PurposeBatchOutput,
		Filename: b.ID + "_" + kind + ".jsonl", Bytes: size, Status: "processed", CreatedAt: e.now()}
	if err := e.Store.PutFile(ctx, f); err != nil {
		return "", err
	}
	return id, nil
}

// finalize writes the output and error files from the items' results (one
// line per custom_id, in input order) once no item is open, and ends the
// batch: cancelled, expired (some items ended unsent) or completed.
func (e *Executor) finalize(ctx context.Context, b *Batch) error {
	cur, err := e.Store.Batch(ctx, b.ID)
	if err != nil {
		return err
	}
	if cur.Counts.Open() > 0 {
		return nil // items still in flight: they finish first
	}
	if cur.Status == InProgress {
		if _, err := e.Store.UpdateBatch(ctx, b.ID, []Status{InProgress}, Update{Status: Finalizing, At: e.now()}); err != nil {
			return err
		}
		cur.Status = Finalizing
	}
	out, errs, expired, err := e.spool(ctx, b.ID)
	if err != nil {
		return err
	}
	defer out.Close()
	defer errs.Close()
	u := Update{Status: Completed, At: e.now()}
	switch {
	case cur.Status == Cancelling:
		u.Status = Cancelled
	case expired:
		u.Status = Expired
	}
	for _, f := range []struct {
		kind string
		file *os.File
		id   *string
	}{{"output", out, &u.OutputFileID}, {"errors", errs, &u.ErrorFileID}} {
		size, err := f.file.Seek(0, io.SeekCurrent)
		if err != nil || size == 0 {
			continue
		}
		if _, err := f.file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if *f.id, err = e.putOutput(ctx, b, f.kind, f.file, size); err != nil {
			return err
		}
	}
	moved, err := e.Store.UpdateBatch(ctx, b.ID, []Status{cur.Status}, u)
	if err == nil && moved {
		e.Logger.Info("batch finished", "batch", b.ID, "status", string(u.Status), "completed", cur.Counts.Completed, "failed", cur.Counts.Failed)
	}
	return err
}

// spool writes the results to two unlinked temporary files, successes and
// failures, so a large batch is never held in memory.
func (e *Executor) spool(ctx context.Context, batchID string) (out, errs *os.File, expired bool, err error) {
	if out, err = tempFile(); err != nil {
		return nil, nil, false, err
	}
	if errs, err = tempFile(); err != nil {
		out.Close()
		return nil, nil, false, err
	}
	outEnc, errEnc := json.NewEncoder(out), json.NewEncoder(errs)
	after := 0
	for {
		page, err := e.Store.Items(ctx, batchID, after, 500)
		if err != nil {
			out.Close()
			errs.Close()
			return nil, nil, false, err
		}
		for _, it := range page {
			after = it.Line
			if it.Result == nil {
				continue // not reached: no open items remain
			}
			enc := errEnc
			if it.Result.OK() {
				enc = outEnc
			}
			expired = expired || it.Result.ErrCode == "batch_expired"
			if err := enc.Encode(it.OutputLine()); err != nil {
				out.Close()
				errs.Close()
				return nil, nil, false, err
			}
		}
		if len(page) < 500 {
			return out, errs, expired, nil
		}
	}
}

func tempFile() (*os.File, error) {
	f, err := os.CreateTemp("", "tidegate-batch-*")
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	os.Remove(f.Name()) // unlinked: gone when closed, or when the process dies
	return f, nil
}

// ErrNotReady asks the queue to run an item again soon, at no cost of an
// attempt: its batch is still validating.
var ErrNotReady = errors.New("batch: the item's batch is not running yet")

// ErrGateShut asks the queue to run an item again soon, at no cost of an
// attempt: the gate had no room for it (online work comes first).
var ErrGateShut = errors.New("batch: the gate had no room for the item")

// ErrRetry asks the queue to run an item again later.
var ErrRetry = errors.New("batch: retry the item later")

// RunItem runs one item: skipped when it is answered already (a job run
// again after a crash) or its batch no longer runs; else sent through the
// gate and the caller, and its result written once. ErrRetry (wrapped)
// asks for another attempt; last says no attempt follows this one.
func (e *Executor) RunItem(ctx context.Context, batchID string, line int, last bool) error {
	it, err := e.Store.Item(ctx, batchID, line)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if it.State == ItemDone {
		return nil
	}
	b, err := e.Store.Batch(ctx, batchID)
	if err != nil {
		return err
	}
	if b.Status == Validating {
		// Queued just before the batch moved to in_progress: not yet.
		return ErrNotReady
	}
	if b.Status != InProgress {
		return nil // cancelled or expired: the loop answers it
	}
	model := headModel(it.Body)
	callCtx, release, err := e.Gate.Acquire(ctx, Ask{Route: model, Created: b.CreatedAt, Expires: b.ExpiresAt})
	if err != nil {
		if ctx.Err() == nil {
			// The gate found no room: not the item's fault, no attempt spent.
			return fmt.Errorf("%w: %v", ErrGateShut, err)
		}
		return fmt.Errorf("%w: gate: %v", ErrRetry, err)
	}
	defer release()
	// Checked after the gate, as close to the call as can be: an item may
	// have waited there for hours.
	refused, err := e.keyRefusal(ctx, b, model)
	if err != nil {
		return err
	}
	if refused != nil {
		if _, err := e.Store.FinishItem(context.WithoutCancel(ctx), batchID, line, *refused); err != nil {
			return err
		}
		e.Wake()
		return nil
	}
	started, err := e.Store.StartItem(ctx, batchID, line)
	if err != nil || !started {
		return err
	}
	r, retry := e.Caller.Call(callCtx, b, it)
	if retry && !last {
		// Back to pending, so a cancel or expiry can still end it.
		if err := e.Store.RequeueItem(context.WithoutCancel(ctx), batchID, line); err != nil {
			return err
		}
		return fmt.Errorf("%w: status %d", ErrRetry, r.StatusCode)
	}
	// The result is written even when the job's context just ended: the
	// upstream answered, and another run would ask it again.
	if _, err := e.Store.FinishItem(context.WithoutCancel(ctx), batchID, line, r); err != nil {
		return err
	}
	e.Wake()
	return nil
}
