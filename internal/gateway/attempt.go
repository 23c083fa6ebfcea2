package gateway

import (
	"context"
	"log/slog"
	"slices"
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
	busy     bool            // at their concurrency limit
	soonest  time.Duration   // when an ejected or cooling target returns
	ejected  []router.Target // out for failures: candidates for a panic pass
	panicked []router.Target // those already given one
	cooling  int             // out only because a 429 cools them
}

func (g *Gateway) newRun(ctx context.Context, plan *router.Plan) *run {
	g.Retries.Earn()
	return &run{g: g, ctx: ctx, plan: pinned(ctx, plan)}
}

// ticket is an admitted attempt and what it holds until it ends.
type ticket struct {
	t       router.Target
	p       provider.Provider
	number  int
	release func()      // the target's concurrency slot
	pass    router.Pass // the target's health admission
}

// admit takes the next target of the plan that may take an attempt now;
// false when none may (see run.err for why). When every target left is out
// for failures, it admits the least bad of them (a panic pass): a
// brown-out then still serves what its upstreams can.
func (r *run) admit() (*ticket, bool) {
	if r.stopped {
		return nil, false
	}
	for r.next < len(r.plan.Targets) {
		t := r.plan.Targets[r.next]
		r.next++
		if r.tooLong != nil && !r.plan.LargerContext(t, *r.tooLong) {
			continue
		}
		if tk, ok := r.take(t, r.healthPass); ok {
			return r.checked(tk)
		}
	}
	for r.g.Health != nil {
		left := slices.DeleteFunc(slices.Clone(r.ejected), func(t router.Target) bool { return slices.Contains(r.panicked, t) })
		pass, ok := r.g.Health.Panic(left)
		if !ok {
			break
		}
		r.panicked = append(r.panicked, pass.Target)
		if tk, ok := r.take(pass.Target, func(router.Target) (router.Pass, bool) { return pass, true }); ok {
			return r.checked(tk)
		}
		r.g.Health.Done(pass, router.Neutral, 0)
	}
	return nil, false
}

// take admits t if its provider, a slot and health let it: admission
// comes from pass (the health tracker, or a panic pass already taken).
func (r *run) take(t router.Target, admit func(router.Target) (router.Pass, bool)) (*ticket, bool) {
	p, ok := r.g.provider(t.ProviderKey())
	if !ok {
		// A credential deleted between planning and now (config
		// validation rules out unknown providers): skip it like an
		// ejected target.
		return nil, false
	}
	release, free := r.plan.TakeTarget(t)
	if !free {
		r.busy = true
		return nil, false
	}
	pass, ok := admit(t)
	if !ok {
		release()
		return nil, false
	}
	return &ticket{t: t, p: p, release: release, pass: pass}, true
}

// healthPass asks the health tracker to admit t, noting why it did not.
func (r *run) healthPass(t router.Target) (router.Pass, bool) {
	if r.g.Health == nil {
		return router.Pass{Target: t}, true
	}
	pass, admitted, wait := r.g.Health.Admit(t)
	if admitted {
		return pass, true
	}
	if r.soonest == 0 || wait < r.soonest {
		r.soonest = wait
	}
	if pass.Cooling {
		r.cooling++
	} else {
		r.ejected = append(r.ejected, t)
	}
	return pass, false
}

// checked applies the run's own limits to an admitted attempt: the
// deadline, then the retry budget for every attempt after the first (in
// that order: a retry the deadline stops is not paid for).
func (r *run) checked(tk *ticket) (*ticket, bool) {
	if deadline, ok := r.ctx.Deadline(); ok && time.Until(deadline) < minAttempt {
		r.stop(tk, &provider.Error{Kind: provider.KindTimeout, Code: "deadline_exceeded",
			Message: "the request's deadline leaves no time for another attempt"})
		return nil, false
	}
	if r.attempts > 0 && !r.g.Retries.Spend() {
		r.stop(tk, nil)
		return nil, false
	}
	r.attempts++
	tk.number = r.attempts
	return tk, true
}

// stop ends the run before tk was tried: its admission is given back.
func (r *run) stop(tk *ticket, why error) {
	r.cancelled(tk)
	r.stopped = true
	if r.last == nil {
		r.last = why
	}
}

// done reports how an attempt ended to the target's health and, for a
// retry, to the retry budget. It does not release the target's slot: a
// stream holds it until it ends.
func (r *run) done(tk *ticket, err error) {
	r.g.healthDone(tk.pass, err)
	if tk.number > 1 {
		r.g.Retries.Report(err == nil)
	}
	if err == nil {
		r.route = tk.t
	}
}

// cancelled gives back an admitted attempt that the gateway itself ended
// (a hedge's loser, or one stopped before it began): it says nothing of
// the target's health.
func (r *run) cancelled(tk *ticket) {
	if r.g.Health != nil {
		r.g.Health.Done(tk.pass, router.Neutral, 0)
	}
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
	if r.cooling > 0 && len(r.ejected) == 0 && !r.busy {
		// Out only because of rate limits: a rate limit stays a rate limit,
		// so SDKs back off as they do for the provider's own 429.
		return &provider.Error{Kind: provider.KindRateLimited, Code: "rate_limited", RetryAfter: r.soonest,
			Message: "every target of this model is rate limited; retry after the indicated time"}
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

// healthDone reports an attempt's result to the health tracker.
func (g *Gateway) healthDone(pass router.Pass, err error) {
	if g.Health == nil {
		return
	}
	r, wait := healthResult(err)
	g.Health.Done(pass, r, wait)
}
