package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// minAttempt is the least time worth starting an attempt with: an attempt
// that cannot finish before the deadline only adds load.
const minAttempt = 50 * time.Millisecond

// run is one request's walk through its plan. Every attempt — failover,
// hedge or resume — is admitted by run.admit, so the rules that guard an
// upstream call (slots, health, retry budget, deadline, context windows)
// are written once.
type run struct {
	g    *Gateway
	ctx  context.Context
	plan *router.Plan
	next int // the next target of the plan to consider

	attempts int
	route    router.Target // the target that answered
	// tooLong is set after a context-length error: only targets with a
	// larger window may follow.
	tooLong *router.Target
	last    error // the last attempt's error
	stopped bool  // the retry budget or the deadline ended the run

	// Why targets were passed over, for the answer when none was tried.
	busy    bool          // at their concurrency limit
	soonest time.Duration // when an ejected or cooling target returns
}

func (g *Gateway) newRun(ctx context.Context, plan *router.Plan) *run {
	g.Retries.Earn()
	return &run{g: g, ctx: ctx, plan: plan}
}

// ticket is an admitted attempt and what it holds until it ends.
type ticket struct {
	t       router.Target
	p       provider.Provider
	number  int
	release func() // the target's concurrency slot
}

// admit takes the next target of the plan that may take an attempt now;
// false when none may (see run.err for why).
func (r *run) admit() (*ticket, bool) {
	g := r.g
	for !r.stopped && r.next < len(r.plan.Targets) {
		t := r.plan.Targets[r.next]
		r.next++
		if r.tooLong != nil && !r.plan.LargerContext(t, *r.tooLong) {
			continue
		}
		p, ok := g.provider(t.ProviderKey())
		if !ok {
			// A credential deleted between planning and now (config
			// validation rules out unknown providers): skip it like an
			// ejected target.
			continue
		}
		release, free := r.plan.TakeTarget(t)
		if !free {
			r.busy = true
			continue
		}
		if g.Health != nil {
			if admitted, wait := g.Health.Admit(t); !admitted {
				release()
				if r.soonest == 0 || wait < r.soonest {
					r.soonest = wait
				}
				continue
			}
		}
		if r.attempts > 0 && !g.Retries.Spend() {
			r.stop(t, release, nil)
			return nil, false
		}
		if deadline, ok := r.ctx.Deadline(); ok && time.Until(deadline) < minAttempt {
			r.stop(t, release, &provider.Error{Kind: provider.KindTimeout, Code: "deadline_exceeded",
				Message: "the request's deadline leaves no time for another attempt"})
			return nil, false
		}
		r.attempts++
		return &ticket{t: t, p: p, number: r.attempts, release: release}, true
	}
	return nil, false
}

// stop ends the run before t was tried: its admission is given back.
func (r *run) stop(t router.Target, release func(), why error) {
	r.g.healthDone(t, nil, true)
	release()
	r.stopped = true
	if r.last == nil {
		r.last = why
	}
}

// done reports how an attempt ended to the target's health and, for a
// retry, to the retry budget. It does not release the target's slot: a
// stream holds it until it ends.
func (r *run) done(tk *ticket, err error) {
	r.g.healthDone(tk.t, err, false)
	if tk.number > 1 {
		r.g.Retries.Report(err == nil)
	}
	if err == nil {
		r.route = tk.t
	}
}

// cancelled gives back an admitted attempt that the gateway itself ended
// (a hedge's loser): it says nothing of the target's health.
func (r *run) cancelled(tk *ticket) {
	r.g.healthDone(tk.t, nil, true)
	tk.release()
}

// failed records an attempt's error and reports whether another target may
// still answer: a failure another target might not have, or a prompt too
// long for this target's window.
func (r *run) failed(t router.Target, err error) bool {
	r.last = err
	if r.ctx.Err() != nil {
		return false
	}
	e := provider.AsError(err)
	if e.Provider == "" {
		e.Provider = t.Provider
	}
	switch {
	case e.Kind == provider.KindContextLength:
		failed := t
		r.tooLong = &failed // fall back only to a target with a larger window
	case !e.Kind.Retryable():
		return false
	}
	r.g.Logger.LogAttrs(r.ctx, slog.LevelWarn, "attempt failed, trying next target",
		slog.String("target", t.String()), slog.String("kind", e.Kind.String()), slog.Int("status", e.Status))
	return true
}

// err is the run's answer when no attempt succeeded.
func (r *run) err() error {
	if r.ctx.Err() != nil {
		return provider.ClassifyTransport(r.ctx.Err())
	}
	if r.last != nil {
		return r.last
	}
	if r.busy && r.soonest == 0 {
		return &provider.Error{Kind: provider.KindOverloaded, Code: "all_targets_busy", RetryAfter: time.Second,
			Message: "every target of this model is at its concurrency limit; retry shortly"}
	}
	// Every target is out (ejected or cooling): answer at once rather than
	// queue, and say when one returns.
	return &provider.Error{Kind: provider.KindOverloaded, Code: "no_healthy_target", RetryAfter: r.soonest,
		Message: "every target of this model is unhealthy or cooling down; retry after the indicated time"}
}

func (r *run) outcome() Outcome { return Outcome{Route: r.route, Attempts: r.attempts} }

// try calls each admitted target of the plan in turn until one answers or
// fails in a way another target cannot fix.
func try[T any](r *run, call func(p provider.Provider, t router.Target) (T, error)) (T, error) {
	var zero T
	for {
		tk, ok := r.admit()
		if !ok {
			return zero, r.err()
		}
		v, err := call(tk.p, tk.t)
		r.done(tk, err)
		if err == nil {
			if h, ok := any(v).(slotHolder); ok {
				h.holdSlot(tk.release) // busy until the stream ends
			} else {
				tk.release()
			}
			return v, nil
		}
		tk.release()
		if !r.failed(tk.t, err) {
			return zero, r.err()
		}
	}
}

// healthDone reports an attempt to the health tracker; skipped releases an
// admission that was not used.
func (g *Gateway) healthDone(t router.Target, err error, skipped bool) {
	if g.Health == nil {
		return
	}
	if skipped {
		g.Health.Done(t, router.Neutral, 0)
		return
	}
	r, wait := healthResult(err)
	g.Health.Done(t, r, wait)
}
