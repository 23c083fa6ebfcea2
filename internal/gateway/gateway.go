// Package gateway holds tidegate's use cases: route a request, call the
// providers in the plan's order, fail over while nothing reached the client.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

// Gateway is safe for concurrent use once built.
type Gateway struct {
	Router    *router.Router
	Providers map[string]provider.Provider
	Logger    *slog.Logger
	// Meter admits and bills requests; nil admits all and bills nothing.
	Meter Meter
	// OutputCap bounds a request's output for its budget reservation when
	// the client set no max_tokens.
	OutputCap int64
	// Created is the timestamp GET /v1/models reports.
	Created time.Time
	// Health ejects failing targets from plans; nil keeps every target in.
	Health *router.Health
	// Retries caps extra attempts across all requests; nil retries freely.
	Retries *RetryBudget
	// FirstTokenTimeout fails a stream attempt that produced nothing in time
	// (the next target is then tried); 0 waits as long as the request may.
	FirstTokenTimeout time.Duration
	// IdleTimeout ends a stream whose upstream went silent after its first
	// token; 0 waits as long as the request may.
	IdleTimeout time.Duration
	// TargetSlots bounds concurrent calls per target ("provider/model");
	// RouteSlots per requested model name. Nil: unbounded.
	TargetSlots *Slots
	RouteSlots  *Slots
	// Hedges maps public model names to their hedging delay: a stream whose
	// first target has not produced a token by then races a second target.
	// A zero delay means the first target's learned p95 time to first token.
	Hedges map[string]time.Duration
	// TTFTs learns each target's time to first token; Answers, its time
	// to a whole (non-streamed) chat answer. Latency order uses the one of
	// the request's kind.
	TTFTs   *TTFT
	Answers *TTFT
	// ContextWindows maps "provider/model" to its context length in tokens.
	ContextWindows map[string]int
	// Resume lists the public models whose broken text streams continue on
	// the next target (opt-in: the targets must honour a prefix message).
	Resume map[string]bool
	// Unsupported maps "provider/model" to what it cannot do ("tools", "vision").
	Unsupported map[string][]string
	// LatencyOrder lists the public models whose targets go fastest first
	// (by learned median time to first token).
	LatencyOrder map[string]bool
	// Explore returns a number in [0,1) for latency order's exploration;
	// nil uses math/rand/v2.
	Explore func() float64

	inflight sync.Map // "provider/model" → *atomic.Int64: calls open on the target
	// swapped replaces Providers while serving (credentials added or removed).
	swapped atomic.Pointer[map[string]provider.Provider]
}

// SetProviders replaces the provider clients while serving: requests that
// start after it use the new ones, running ones finish on the old.
func (g *Gateway) SetProviders(m map[string]provider.Provider) { g.swapped.Store(&m) }

// CurrentProviders is the provider clients in use.
func (g *Gateway) CurrentProviders() map[string]provider.Provider {
	if m := g.swapped.Load(); m != nil {
		return *m
	}
	return g.Providers
}

func (g *Gateway) provider(key string) (provider.Provider, bool) {
	p, ok := g.CurrentProviders()[key]
	return p, ok
}

// startAttempt opens an attempt's timeline and counts it in flight on its
// target; end closes both, with the error that ended it (nil: success).
func (g *Gateway) startAttempt(ctx context.Context, t router.Target) (context.Context, *timing.Attempt, func(error)) {
	name := t.String()
	c, ok := g.inflight.Load(name)
	if !ok {
		c, _ = g.inflight.LoadOrStore(name, new(atomic.Int64))
	}
	n := c.(*atomic.Int64).Add(1)
	actx, a := timing.From(ctx).StartAttempt(ctx, name, int(n))
	var once sync.Once
	return actx, a, func(err error) {
		once.Do(func() {
			c.(*atomic.Int64).Add(-1)
			kind := ""
			if err != nil {
				kind = provider.AsError(err).Kind.String()
			}
			a.End(kind)
		})
	}
}

// slotHolder is a result that keeps its target busy until it ends (a stream).
type slotHolder interface{ holdSlot(release func()) }

func (s *Stream) holdSlot(release func()) { s.releases = append(s.releases, release) }

// routeSlot takes a slot on the requested model, or refuses at once.
func (g *Gateway) routeSlot(model string) (func(), error) {
	release, ok := g.RouteSlots.Take(model)
	if !ok {
		return nil, &provider.Error{Kind: provider.KindRateLimited, Code: "route_busy", RetryAfter: time.Second,
			Message: "this model is at its concurrency limit; retry shortly"}
	}
	return release, nil
}

func (g *Gateway) open(ctx context.Context, call *Call, est Estimate) (Tab, error) {
	if g.Meter == nil || call == nil {
		return noTab{}, nil
	}
	return g.Meter.Open(ctx, call, est)
}

func (g *Gateway) outputCap() int64 {
	if g.OutputCap > 0 {
		return g.OutputCap
	}
	return 4096
}

// Outcome tells the client which target answered and after how many attempts.
type Outcome struct {
	Route    router.Target // zero when no target answered
	Attempts int
	settle   func()
}

// Settle bills the request. The caller delivers the answer first, then
// settles: the client is not kept waiting for the ledger's durable commit,
// and the commit still precedes the end of the request. Safe when there is
// nothing to settle.
func (o Outcome) Settle() {
	if o.settle != nil {
		o.settle()
	}
}

// try runs call on each target of the plan in order until one succeeds or
// fails in a way another target cannot fix.
func try[T any](ctx context.Context, g *Gateway, plan []router.Target, call func(p provider.Provider, t router.Target) (T, error)) (T, Outcome, error) {
	var zero T
	var out Outcome
	var last error
	g.Retries.Earn()
	var soonest time.Duration // when an unadmitted target may return
	busy := false
	var tooLong *router.Target // set after a context-length error: only larger windows may follow
	for _, t := range plan {
		if tooLong != nil && !g.largerContext(t, *tooLong) {
			continue
		}
		p, ok := g.provider(t.ProviderKey())
		if !ok {
			// A credential deleted between planning and now (config
			// validation rules out unknown providers): skip it like an
			// ejected target.
			continue
		}
		releaseSlot, free := g.TargetSlots.Take(t.String())
		if !free {
			busy = true
			continue
		}
		var pass router.Pass
		if g.Health != nil {
			var admitted bool
			var wait time.Duration
			if pass, admitted, wait = g.Health.Admit(t); !admitted {
				releaseSlot()
				if soonest == 0 || wait < soonest {
					soonest = wait
				}
				continue
			}
		}
		if out.Attempts > 0 && !g.Retries.Spend() {
			g.healthDone(pass, nil, true)
			releaseSlot()
			break
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < minAttempt {
			g.healthDone(pass, nil, true)
			releaseSlot()
			break
		}
		out.Attempts++
		v, err := call(p, t)
		g.healthDone(pass, err, false)
		if h, ok := any(v).(slotHolder); ok && err == nil {
			h.holdSlot(releaseSlot) // busy until the stream ends
		} else {
			releaseSlot()
		}
		if out.Attempts > 1 {
			g.Retries.Report(err == nil)
		}
		if err == nil {
			out.Route = t
			return v, out, nil
		}
		last = err
		e := provider.AsError(err)
		if e.Provider == "" {
			e.Provider = t.Provider
		}
		if e.Kind == provider.KindContextLength && ctx.Err() == nil {
			failed := t
			tooLong = &failed // fall back only to a target with a larger window
			continue
		}
		if ctx.Err() != nil || !e.Kind.Retryable() {
			break
		}
		g.Logger.LogAttrs(ctx, slog.LevelWarn, "attempt failed, trying next target",
			slog.String("target", t.String()), slog.String("kind", e.Kind.String()), slog.Int("status", e.Status))
	}
	if ctx.Err() != nil {
		return zero, out, provider.ClassifyTransport(ctx.Err())
	}
	if last == nil && busy && soonest == 0 {
		return zero, out, &provider.Error{Kind: provider.KindOverloaded, Code: "all_targets_busy", RetryAfter: time.Second,
			Message: "every target of this model is at its concurrency limit; retry shortly"}
	}
	if last == nil {
		// Every target is out (ejected or cooling): answer at once rather
		// than queue, and say when one returns.
		return zero, out, &provider.Error{Kind: provider.KindOverloaded, Code: "no_healthy_target", RetryAfter: soonest,
			Message: "every target of this model is unhealthy or cooling down; retry after the indicated time"}
	}
	return zero, out, last
}

// healthDone reports an attempt to the health tracker; skipped releases an
// admission that was not used.
func (g *Gateway) healthDone(pass router.Pass, err error, skipped bool) {
	if g.Health == nil {
		return
	}
	if skipped {
		g.Health.Done(pass, router.Neutral, 0)
		return
	}
	r, wait := healthResult(err)
	g.Health.Done(pass, r, wait)
}

// chatPlan is the request's plan, less the targets too small for its prompt.
func (g *Gateway) chatPlan(req *llm.ChatRequest) ([]router.Target, error) {
	plan, err := g.Router.Plan(req.Model)
	if err != nil {
		return nil, err
	}
	if plan, err = g.ablePlan(plan, req); err != nil {
		return nil, err
	}
	if g.LatencyOrder[req.Model] {
		learned := g.TTFTs
		if !req.Stream {
			learned = g.Answers
		}
		plan = g.byLatency(plan, learned)
	}
	return g.fitPlan(plan, promptBytes(req))
}

// exploreShare is the share of latency-ordered requests that keep the
// configured order, so a demoted target that recovered is measured again.
const exploreShare = 0.05

// byLatency orders a plan by each target's learned median latency, fastest
// first; targets not yet learned go first, to be learned.
func (g *Gateway) byLatency(plan []router.Target, learned *TTFT) []router.Target {
	explore := g.Explore
	if explore == nil {
		explore = rand.Float64
	}
	if explore() < exploreShare {
		return plan
	}
	type keyed struct {
		t   router.Target
		p50 time.Duration
	}
	ks := make([]keyed, len(plan))
	for i, t := range plan {
		p50, _ := learned.P50(t) // 0 until learned
		ks[i] = keyed{t, p50}
	}
	sort.SliceStable(ks, func(i, j int) bool { return ks[i].p50 < ks[j].p50 })
	out := make([]router.Target, len(ks))
	for i, k := range ks {
		out[i] = k.t
	}
	return out
}

// forTarget copies a request with the target's own model name.
func forTarget(req *llm.ChatRequest, t router.Target) *llm.ChatRequest {
	r := *req
	r.Model = t.Model
	return &r
}

// Chat answers a non-streaming chat completion.
func (g *Gateway) Chat(ctx context.Context, call *Call, req *llm.ChatRequest) (*llm.ChatResponse, Outcome, error) {
	plan, err := g.chatPlan(req)
	if err != nil {
		return nil, Outcome{}, err
	}
	release, err := g.routeSlot(req.Model)
	if err != nil {
		return nil, Outcome{}, err
	}
	defer release()
	tab, err := g.open(ctx, call, estimate(req, plan, g.outputCap()))
	if err != nil {
		return nil, Outcome{}, err
	}
	timing.From(ctx).Routed()
	var started time.Time
	resp, out, err := try(ctx, g, plan, func(p provider.Provider, t router.Target) (*llm.ChatResponse, error) {
		started = time.Now()
		actx, ta, end := g.startAttempt(ctx, t)
		resp, err := p.ChatCompletion(actx, forTarget(req, t))
		if err == nil {
			g.Answers.Observe(t, time.Since(started))
			if resp.Usage != nil {
				ta.Tokens(resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
			}
		}
		end(err)
		return resp, err
	})
	if err == nil {
		a := Attempt{Target: out.Route, Number: out.Attempts, Status: "ok", Latency: time.Since(started)}
		if resp.Usage != nil {
			a.Usage = *resp.Usage
		} else {
			chars := 0
			for _, c := range resp.Choices {
				chars += len(c.Message.Content.String()) + len(c.Message.ReasoningContent)
			}
			a.Usage, a.Estimated = llm.Usage{PromptTokens: int(estimate(req, plan, 0).PromptTokens), CompletionTokens: int(EstimateTokens(chars))}, true
		}
		tab.Record(a)
		out.settle = tab.Close
		return resp, out, nil
	}
	tab.Close()
	return resp, out, err
}

// ChatStream opens a stream and holds it until its first chunk, so that a
// target failing before it produced anything costs the client nothing: the
// next target is tried. The first chunk is replayed by the returned stream.
func (g *Gateway) ChatStream(ctx context.Context, call *Call, req *llm.ChatRequest) (*Stream, Outcome, error) {
	plan, err := g.chatPlan(req)
	if err != nil {
		return nil, Outcome{}, err
	}
	est := estimate(req, plan, g.outputCap())
	releaseRoute, err := g.routeSlot(req.Model)
	if err != nil {
		return nil, Outcome{}, err
	}
	tab, err := g.open(ctx, call, est)
	if err != nil {
		releaseRoute()
		return nil, Outcome{}, err
	}
	timing.From(ctx).Routed()
	var started time.Time
	var s *Stream
	var out Outcome
	if delay := g.hedgeDelay(req.Model, plan); delay > 0 && len(plan) > 1 {
		s, out, err = g.hedged(ctx, plan, req, delay, tab, est.PromptTokens)
		started = time.Now()
		if s != nil {
			started = s.started
		}
	} else {
		s, out, err = try(ctx, g, plan, func(p provider.Provider, t router.Target) (*Stream, error) {
			started = time.Now()
			return g.openStream(ctx, p, t, req)
		})
	}
	if err != nil {
		tab.Close()
		releaseRoute()
		return nil, out, err
	}
	s.holdSlot(releaseRoute)
	s.tab, s.promptEstimate = tab, est.PromptTokens
	if g.Resume[req.Model] && len(req.Tools) == 0 && req.Choices() == 1 {
		s.resume = &resumer{g: g, ctx: ctx, req: req, plan: plan}
	}
	if s.attempt.Number == 0 { // hedged streams know their winning attempt already
		s.started, s.attempt = started, Attempt{Target: out.Route, Number: out.Attempts}
	}
	return s, out, nil
}

// openStream opens a stream on one target and holds it until its first
// chunk. The attempt has its own context: a first token later than
// FirstTokenTimeout cancels this attempt, not the request.
func (g *Gateway) openStream(ctx context.Context, p provider.Provider, t router.Target, req *llm.ChatRequest) (*Stream, error) {
	opened := time.Now()
	tctx, ta, end := g.startAttempt(ctx, t)
	actx, cancel := context.WithCancel(tctx)
	var slow atomic.Bool
	var timer *time.Timer
	if g.FirstTokenTimeout > 0 {
		timer = time.AfterFunc(g.FirstTokenTimeout, func() { slow.Store(true); cancel() })
	}
	fail := func(err error) (*Stream, error) {
		if timer != nil {
			timer.Stop()
		}
		cancel()
		if slow.Load() && ctx.Err() == nil {
			err = &provider.Error{Kind: provider.KindTimeout, Provider: t.Provider, Code: "first_token_timeout",
				Message: fmt.Sprintf("no first token within %s", g.FirstTokenTimeout)}
		}
		end(err)
		return nil, err
	}
	s, err := p.ChatCompletionStream(actx, forTarget(req, t))
	if err != nil {
		return fail(err)
	}
	if !s.Next() {
		err := s.Err()
		s.Close()
		if err == nil {
			err = &provider.Error{Kind: provider.KindBadResponse, Provider: t.Provider, Message: "upstream stream ended with no output"}
		}
		return fail(err)
	}
	if timer != nil && !timer.Stop() { // the timer fired as the first token came
		s.Close()
		return fail(context.Canceled)
	}
	ta.Token()
	g.TTFTs.Observe(t, time.Since(opened))
	return &Stream{inner: s, pending: true, wantUsage: req.WantsUsage(), cancel: cancel, idle: g.IdleTimeout,
		timing: ta, endAttempt: end}, nil
}

// Stream relays an upstream stream: it replays the held first chunk, and
// keeps the usage for metering while passing it on only to clients that
// asked. Close bills it: from the provider's usage, or, for a stream that
// broke or was cancelled without one, from what was generated, estimated.
type Stream struct {
	inner     provider.ChatStream
	pending   bool
	wantUsage bool
	cur       *llm.ChatChunk
	usage     *llm.Usage
	ended     bool // Next returned false
	chars     int  // generated text, for an estimate

	tab            Tab
	attempt        Attempt
	started        time.Time
	promptEstimate int64
	closed         bool
	releases       []func() // concurrency slots held until the stream ends
	beforeSettle   func()   // waits for the losers of a hedge race to be billed

	// resume, when set, continues a broken text stream on the next target.
	resume *resumer

	timing     *timing.Attempt
	endAttempt func(error)   // ends the attempt's timeline and in-flight count, once
	cancel     func()        // ends the attempt's context
	idle       time.Duration // the longest silence allowed between chunks
	silent     atomic.Bool   // the idle watchdog fired
	watchdog   *time.Timer
}

func (s *Stream) Next() bool {
	for {
		fresh := !s.pending // the held first chunk was timed when it came
		if s.pending {
			s.pending = false
		} else if !s.next() {
			if s.resume != nil && s.resume.try(s) {
				continue
			}
			s.ended = true
			return false
		}
		c := s.inner.Chunk()
		if fresh && len(c.Choices) > 0 {
			s.timing.Token()
		}
		if s.resume != nil {
			var skip bool
			if c, skip = s.resume.observe(c); skip {
				continue
			}
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				s.chars += len(*ch.Delta.Content)
				s.timing.Output(*ch.Delta.Content)
			}
			if ch.Delta.ReasoningContent != nil {
				s.chars += len(*ch.Delta.ReasoningContent)
			}
			for _, tc := range ch.Delta.ToolCalls {
				s.chars += len(tc.Function.Name) + len(tc.Function.Arguments)
			}
		}
		if c.Usage != nil {
			s.usage = c.Usage
			if !s.wantUsage {
				if len(c.Choices) == 0 {
					continue
				}
				cp := *c
				cp.Usage, cp.Raw = nil, nil
				c = &cp
			}
		}
		s.cur = c
		return true
	}
}

func (s *Stream) Chunk() *llm.ChatChunk { return s.cur }

// Buffered reports whether the next chunk is already in memory.
func (s *Stream) Buffered() bool {
	b, ok := s.inner.(provider.BufferedStream)
	return ok && b.Buffered()
}

// next pulls the upstream's next chunk under the idle watchdog: an upstream
// silent for longer than the idle timeout is cut, and the stream ends in a
// timeout error.
func (s *Stream) next() bool {
	if s.idle <= 0 || s.cancel == nil {
		return s.inner.Next()
	}
	// One timer per stream, re-armed for each chunk.
	if s.watchdog == nil {
		s.watchdog = time.AfterFunc(s.idle, func() { s.silent.Store(true); s.cancel() })
	} else {
		s.watchdog.Reset(s.idle)
	}
	ok := s.inner.Next()
	s.watchdog.Stop()
	return ok
}

func (s *Stream) Err() error {
	if s.silent.Load() {
		return &provider.Error{Kind: provider.KindTimeout, Provider: s.attempt.Target.Provider, Code: "stream_stalled",
			Message: fmt.Sprintf("the upstream sent nothing for %s", s.idle)}
	}
	return s.inner.Err()
}

// Close ends the upstream stream and bills it, once.
func (s *Stream) Close() error {
	err := s.inner.Close()
	if s.cancel != nil {
		s.cancel()
	}
	if s.endAttempt != nil {
		if s.usage != nil {
			s.timing.Tokens(s.usage.PromptTokens, s.usage.CompletionTokens)
		} else {
			s.timing.Tokens(int(s.promptEstimate), int(EstimateTokens(s.chars)))
		}
		var cause error
		switch {
		case s.ended && s.Err() != nil:
			cause = s.Err()
		case !s.ended:
			cause = &provider.Error{Kind: provider.KindCanceled}
		}
		s.endAttempt(cause)
	}
	for _, release := range s.releases {
		release()
	}
	s.releases = nil
	if s.closed || s.tab == nil {
		return err
	}
	s.closed = true
	a := s.attempt
	a.Latency = time.Since(s.started)
	switch {
	case s.ended && s.Err() == nil:
		a.Status = "ok"
	case s.ended:
		a.Status = "error"
	default:
		a.Status = "canceled" // the client left before the end
	}
	if s.usage != nil {
		a.Usage = *s.usage
	} else {
		// No usage from the provider (a broken or cancelled stream): bill what
		// was generated, estimated, and flag it.
		a.Usage = llm.Usage{PromptTokens: int(s.promptEstimate), CompletionTokens: int(EstimateTokens(s.chars))}
		a.Estimated = true
	}
	s.tab.Record(a)
	if s.beforeSettle != nil {
		s.beforeSettle()
	}
	s.tab.Close()
	return err
}

// Usage is the provider's final usage, nil if it sent none.
func (s *Stream) Usage() *llm.Usage { return s.usage }

// Embeddings answers an embeddings request.
func (g *Gateway) Embeddings(ctx context.Context, call *Call, req *llm.EmbeddingRequest) (*llm.EmbeddingResponse, Outcome, error) {
	plan, err := g.Router.Plan(req.Model)
	if err != nil {
		return nil, Outcome{}, err
	}
	tab, err := g.open(ctx, call, Estimate{Plan: plan, PromptTokens: int64(len(req.Input)+2) / 3})
	if err != nil {
		return nil, Outcome{}, err
	}
	timing.From(ctx).Routed()
	started := time.Now()
	resp, out, err := try(ctx, g, plan, func(p provider.Provider, t router.Target) (*llm.EmbeddingResponse, error) {
		e, ok := p.(provider.Embedder)
		if !ok {
			return nil, unsupported(t, "embeddings")
		}
		r := *req
		r.Model = t.Model
		actx, _, end := g.startAttempt(ctx, t)
		resp, err := e.Embeddings(actx, &r)
		end(err)
		return resp, err
	})
	if err == nil {
		a := Attempt{Target: out.Route, Number: out.Attempts, Status: "ok", Latency: time.Since(started)}
		if resp.Usage != nil {
			a.Usage = *resp.Usage
		} else {
			a.Usage, a.Estimated = llm.Usage{PromptTokens: int(int64(len(req.Input)+3) / 4)}, true
		}
		tab.Record(a)
		out.settle = tab.Close
		return resp, out, nil
	}
	tab.Close()
	return resp, out, err
}

// Images answers an image generation request.
func (g *Gateway) Images(ctx context.Context, call *Call, req *llm.ImageRequest) (*llm.ImageResponse, Outcome, error) {
	plan, err := g.Router.Plan(req.Model)
	if err != nil {
		return nil, Outcome{}, err
	}
	tab, err := g.open(ctx, call, Estimate{Plan: plan})
	if err != nil {
		return nil, Outcome{}, err
	}
	defer tab.Close() // images carry no token usage to bill yet
	timing.From(ctx).Routed()
	return try(ctx, g, plan, func(p provider.Provider, t router.Target) (*llm.ImageResponse, error) {
		ig, ok := p.(provider.ImageGenerator)
		if !ok {
			return nil, unsupported(t, "image generation")
		}
		r := *req
		r.Model = t.Model
		actx, _, end := g.startAttempt(ctx, t)
		resp, err := ig.ImageGeneration(actx, &r)
		end(err)
		return resp, err
	})
}

func unsupported(t router.Target, what string) error {
	return &provider.Error{Kind: provider.KindUnsupported, Code: "unsupported_operation", Provider: t.Provider,
		Message: fmt.Sprintf("%s does not offer %s", t, what)}
}

// Models lists the models a client can address.
func (g *Gateway) Models() []llm.Model {
	names := g.Router.Models()
	out := make([]llm.Model, 0, len(names))
	for _, n := range names {
		owner := "tidegate"
		if t, ok := router.ParseTarget(n); ok {
			owner = t.Provider
		}
		out = append(out, llm.Model{ID: n, Object: "model", Created: g.Created.Unix(), OwnedBy: owner})
	}
	return out
}
