// Package evalrun runs an eval suite over candidate models through
// tidegate's own call path (gateway.Chat: real providers, real ledger rows
// tagged as eval spend), each model addressed as provider/model so its
// plan has that one target and no failover. A run is a row in the store
// worked under a lease; each item×model result is written once, so a run
// resumed after a crash grades only what is not done.
package evalrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// Store is what a run needs of the store (store.DB).
type Store interface {
	Suite(ctx context.Context, name string) (*eval.Suite, error)
	CreateRun(ctx context.Context, r *eval.Run) error
	EvalRun(ctx context.Context, id string) (*eval.Run, error)
	UnfinishedRuns(ctx context.Context, origin string) ([]eval.Run, error)
	LeaseRun(ctx context.Context, id, owner string, d time.Duration) error
	FinishRun(ctx context.Context, id, owner, status, msg string) error
	SaveResult(ctx context.Context, r *eval.RunResult) (bool, error)
	RunResults(ctx context.Context, runID string) ([]eval.RunResult, error)
}

// Bounds.
const (
	MaxModels          = 32
	MaxConcurrency     = 256
	DefaultConcurrency = 8
	DefaultLease       = 15 * time.Second
	maxAnswer          = 8 << 10 // bytes of an answer kept with its result
	maxError           = 300
)

// Runner runs suites. Safe for concurrent use.
type Runner struct {
	Store   Store
	Gateway *gateway.Gateway
	Logger  *slog.Logger
	// Judge is the provider/model that grades judge items; "" refuses them.
	Judge string
	// Lease is how long a run is held without renewal (renewed at a third
	// of it); another process takes over a run whose lease lapsed. 0: 15 s.
	Lease time.Duration
	// Finished, if set, is called once a run is marked done or failed
	// (the app tells every replica's ability routes).
	Finished func(ctx context.Context, id string)

	ownerOnce sync.Once
	owner     string
	mu        sync.Mutex
	base      context.Context // set by Serve: API-started runs live as long as it
	active    map[string]bool // runs this process is working in the background
	running   sync.WaitGroup
}

func (r *Runner) lease() time.Duration {
	if r.Lease > 0 {
		return r.Lease
	}
	return DefaultLease
}

// Owner names this process as a lease holder.
func (r *Runner) Owner() string {
	r.ownerOnce.Do(func() { r.owner = ids.New("evw") })
	return r.owner
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// CheckModels refuses a model list a run cannot judge alone: each must be
// provider/model (a route name would fail over to other targets), known to
// the router, listed once.
func (r *Runner) CheckModels(models []string) error {
	if len(models) == 0 || len(models) > MaxModels {
		return &InputError{"models", fmt.Sprintf("want 1–%d models, got %d", MaxModels, len(models))}
	}
	for i, m := range models {
		param := fmt.Sprintf("models[%d]", i)
		t, ok := router.ParseTarget(m)
		if !ok {
			return &InputError{param, fmt.Sprintf("%q: address a model as provider/model, so it is judged alone (no failover)", m)}
		}
		if slices.Contains(models[:i], m) {
			return &InputError{param, fmt.Sprintf("%q is listed twice", m)}
		}
		if _, err := r.Gateway.Router.Plan(&router.Request{Model: t.String()}); err != nil {
			return &InputError{param, provider.AsError(err).Message}
		}
	}
	return nil
}

// Create stores a new run of a suite over models.
func (r *Runner) Create(ctx context.Context, suite string, models []string, concurrency int, origin string) (*eval.Run, error) {
	if err := r.CheckModels(models); err != nil {
		return nil, err
	}
	if concurrency == 0 {
		concurrency = DefaultConcurrency
	}
	if concurrency < 1 || concurrency > MaxConcurrency {
		return nil, &InputError{"concurrency", fmt.Sprintf("want 1–%d, got %d", MaxConcurrency, concurrency)}
	}
	run := &eval.Run{Suite: suite, Models: models, Concurrency: concurrency, Origin: origin}
	if err := r.Store.CreateRun(ctx, run); err != nil {
		return nil, err
	}
	return run, nil
}

// Progress is told how many item×model results are stored of the total.
type Progress func(done, total int)

// Execute works a run to its end: it takes the run's lease (eval.ErrLeased
// when another process holds it), grades each item×model not yet stored,
// and marks the run done (or failed, when the store or the suite fails it).
// When ctx ends first the run stays running, to be resumed.
func (r *Runner) Execute(ctx context.Context, id string, progress Progress) error {
	run, err := r.Store.EvalRun(ctx, id)
	if err != nil {
		return err
	}
	if run.Status != eval.RunRunning {
		return nil
	}
	owner := r.Owner()
	if err := r.Store.LeaseRun(ctx, id, owner, r.lease()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		tick := time.NewTicker(r.lease() / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := r.Store.LeaseRun(ctx, id, owner, r.lease()); err != nil && ctx.Err() == nil {
					cancel(fmt.Errorf("evalrun: lost the lease on run %s: %w", id, err))
					return
				}
			}
		}
	}()
	defer func() { cancel(nil); <-renewed }()

	err = r.work(ctx, run, progress)
	if cause := context.Cause(ctx); cause != nil {
		if errors.Is(cause, context.Canceled) {
			// Stopped (a drain): hand the lease back, expired, so another
			// replica resumes the run now rather than when it lapses.
			hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := r.Store.LeaseRun(hctx, id, owner, -time.Second); err != nil {
				r.logger().Warn("eval run lease not handed back; it lapses on its own", "run", id, "error", err)
			}
			hcancel()
		}
		return cause // stopped or lease lost: left running, to be resumed
	}
	status, msg := eval.RunDone, ""
	if err != nil {
		status, msg = eval.RunFailed, err.Error()
	}
	if ferr := r.Store.FinishRun(context.WithoutCancel(ctx), id, owner, status, msg); ferr != nil {
		return errors.Join(err, ferr)
	}
	if r.Finished != nil {
		r.Finished(context.WithoutCancel(ctx), id)
	}
	return err
}

type task struct {
	item  int
	model string
}

// work grades what is not done, at most run.Concurrency at a time.
func (r *Runner) work(ctx context.Context, run *eval.Run, progress Progress) error {
	su, err := r.Store.Suite(ctx, run.Suite)
	if err != nil {
		return fmt.Errorf("suite %s: %w", run.Suite, err)
	}
	if su.ID != run.SuiteID {
		return fmt.Errorf("suite %s was replaced after the run began", run.Suite)
	}
	stored, err := r.Store.RunResults(ctx, run.ID)
	if err != nil {
		return err
	}
	done := make(map[[2]string]bool, len(stored))
	for _, res := range stored {
		done[[2]string{res.ItemID, res.Model}] = true
	}
	var todo []task
	for i, it := range su.Items {
		for _, m := range run.Models {
			if !done[[2]string{it.ID, m}] {
				todo = append(todo, task{i, m})
			}
		}
	}
	total := len(su.Items) * len(run.Models)
	var count atomic.Int64
	count.Store(int64(total - len(todo)))
	report := func() {
		if progress != nil {
			progress(int(count.Load()), total)
		}
	}
	report()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	jobs := make(chan task)
	var wg sync.WaitGroup
	for range min(run.Concurrency, max(len(todo), 1)) {
		wg.Go(func() {
			for t := range jobs {
				res, err := r.grade(ctx, run, su, t)
				if err == nil {
					_, err = r.Store.SaveResult(ctx, res)
				}
				if err != nil {
					stop(err)
					continue
				}
				count.Add(1)
				report()
			}
		})
	}
feed:
	for _, t := range todo {
		select {
		case jobs <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// grade asks one model one item and grades its answer. A failed call or
// grading is a result (score 0, with the error); only the run's own end
// (ctx) is an error, and then nothing is stored for the item.
func (r *Runner) grade(ctx context.Context, run *eval.Run, su *eval.Suite, t task) (*eval.RunResult, error) {
	it := &su.Items[t.item]
	res := &eval.RunResult{RunID: run.ID, ItemID: it.ID, Model: t.model, RequestID: ids.Request()}
	call := &gateway.Call{RequestID: res.RequestID, ClientRequestID: "eval:" + run.ID, Purpose: eval.PurposeEval}
	started := time.Now()
	resp, out, err := r.Gateway.Chat(ctx, call, &llm.ChatRequest{Model: t.model, Messages: it.Messages})
	res.Latency = time.Since(started)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		res.Error = callError(err)
		return res, nil
	}
	out.Settle()
	answer := answerText(resp)
	check, err := su.Check(t.item)
	if err != nil {
		res.Error = truncate(err.Error(), maxError)
		return res, nil
	}
	var j eval.Judge
	var gj *gatewayJudge
	if r.Judge != "" {
		gj = &gatewayJudge{r: r, label: "judge:" + res.RequestID}
		j = gj
	}
	g, err := check.Grade(ctx, answer, j)
	if gj != nil && gj.used.Load() {
		res.JudgeLabel = gj.label
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		res.Error = truncate(err.Error(), maxError)
	}
	res.Score, res.Reason, res.Answer = g.Score, g.Reason, truncate(answer, maxAnswer)
	return res, nil
}

// callError is a failed call as a result keeps it: the gateway's error,
// whose message is already redacted of upstream secrets, bounded.
func callError(err error) string {
	pe := provider.AsError(err)
	return truncate(pe.Kind.String()+": "+pe.Message, maxError)
}

func answerText(resp *llm.ChatResponse) string {
	if resp == nil || len(resp.Choices) == 0 {
		return ""
	}
	return resp.Choices[0].Message.Content.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// gatewayJudge grades through the gateway with the configured judge model;
// its calls are tagged eval_judge and labelled with the candidate's
// request, so the judge's cost is the ledger's, apart.
type gatewayJudge struct {
	r     *Runner
	label string
	used  atomic.Bool
}

func (j *gatewayJudge) Judge(ctx context.Context, req eval.JudgeRequest) (eval.JudgeVerdict, error) {
	j.used.Store(true)
	zero := 0.0
	call := &gateway.Call{RequestID: ids.Request(), ClientRequestID: j.label, Purpose: eval.PurposeJudge}
	resp, out, err := j.r.Gateway.Chat(ctx, call, &llm.ChatRequest{Model: j.r.Judge, Messages: eval.JudgeMessages(req), Temperature: &zero})
	if err != nil {
		return eval.JudgeVerdict{}, errors.New(callError(err))
	}
	out.Settle()
	return eval.ParseJudgeReply(answerText(resp))
}

// Start creates a run and works it in the background (for the admin API);
// Serve's context bounds it, so a stopping server leaves it resumable.
func (r *Runner) Start(ctx context.Context, suite string, models []string, concurrency int) (*eval.Run, error) {
	run, err := r.Create(ctx, suite, models, concurrency, eval.OriginAPI)
	if err != nil {
		return nil, err
	}
	r.spawn(run.ID)
	return run, nil
}

func (r *Runner) spawn(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	base := r.base
	if base == nil || base.Err() != nil || r.active[id] {
		return // not serving (resumed when a server starts), or already worked here
	}
	if r.active == nil {
		r.active = map[string]bool{}
	}
	r.active[id] = true
	r.running.Go(func() {
		defer func() { r.mu.Lock(); delete(r.active, id); r.mu.Unlock() }()
		if err := r.Execute(base, id, nil); err != nil && !errors.Is(err, eval.ErrLeased) && base.Err() == nil {
			r.logger().Error("eval run failed", "run", id, "error", err)
		}
	})
}

// Serve resumes API-started runs left running (a crashed or stopped
// server's, or a replica's whose lease lapsed) on start and then every
// lease period, until ctx ends; it returns when its runs have stopped.
func (r *Runner) Serve(ctx context.Context) {
	r.mu.Lock()
	r.base = ctx
	r.mu.Unlock()
	defer r.running.Wait()
	tick := time.NewTicker(r.lease())
	defer tick.Stop()
	for {
		runs, err := r.Store.UnfinishedRuns(ctx, eval.OriginAPI)
		if err != nil && ctx.Err() == nil {
			r.logger().Warn("eval runs not listed", "error", err)
		}
		for _, run := range runs {
			r.spawn(run.ID)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// InputError refuses what was asked of a run: its models or concurrency.
type InputError struct{ Param, Msg string }

func (e *InputError) Error() string { return e.Param + ": " + e.Msg }
