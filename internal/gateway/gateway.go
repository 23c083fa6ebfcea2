// Package gateway holds tidegate's use cases: plan a request, call the
// providers in the plan's order, fail over while nothing reached the client.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

// Gateway is safe for concurrent use once built. Each route's policy lives
// in the router's plans; the gateway runs them.
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
	// Verifiers, by route name, check a cascade route's answers before the
	// client sees them (see cascade.go); set before serving.
	Verifiers map[string]Verifier
	// Shadows, by route name, grade a share of a route's answers against
	// its best target's, off the request path (see shadow.go).
	Shadows map[string]*Shadow
	// Load, when set, learns self-hosted targets' load from each attempt
	// (balance: load reads it through the router); nil: none.
	Load LoadObserver

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
	ctx, lc := g.startLoad(ctx, t)
	actx, a := timing.From(ctx).StartAttempt(ctx, name, int(n))
	var once sync.Once
	return actx, a, func(err error) {
		once.Do(func() {
			c.(*atomic.Int64).Add(-1)
			if lc != nil {
				lc.Done(err)
			}
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

// takeRoute takes a slot on the plan's route, or refuses at once.
func takeRoute(plan *router.Plan) (func(), error) {
	release, ok := plan.TakeRoute()
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

// chatPlan plans a chat request: its route's order, less the targets that
// cannot take it (capabilities, context window).
func (g *Gateway) chatPlan(req *llm.ChatRequest) (*router.Plan, error) {
	return g.Router.Plan(&router.Request{Model: req.Model, Stream: req.Stream, PromptBytes: promptBytes(req), Needs: needs(req), Messages: req.Messages})
}

// needs lists the capabilities a request needs.
func needs(req *llm.ChatRequest) []string {
	var out []string
	if len(req.Tools) > 0 {
		out = append(out, "tools")
	}
	for _, m := range req.Messages {
		for _, p := range m.Content.Parts {
			if p.Type == "image_url" {
				return append(out, "vision")
			}
		}
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
	timing.From(ctx).Chose(plan.Reason)
	release, err := takeRoute(plan)
	if err != nil {
		return nil, Outcome{}, err
	}
	defer release()
	tab, err := g.open(ctx, call, estimate(req, plan.Targets, g.outputCap()))
	if err != nil {
		return nil, Outcome{}, err
	}
	timing.From(ctx).Routed()
	var started time.Time
	r := g.newRun(ctx, plan)
	attempt := func(p provider.Provider, t router.Target) (*llm.ChatResponse, error) {
		started = time.Now()
		actx, ta, end := g.startAttempt(ctx, t)
		resp, err := p.ChatCompletion(actx, g.forTarget(ctx, req, t))
		if err == nil {
			g.Router.Learned.Answers.Observe(t, time.Since(started))
			if resp.Usage != nil {
				ta.Tokens(resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
				if lc := loadCallFrom(actx); lc != nil {
					lc.Tokens(resp.Usage.CompletionTokens)
				}
			}
		}
		end(err)
		return resp, err
	}
	resp, err := try(r, attempt)
	if err != nil {
		tab.Close()
		return nil, r.outcome(), err
	}
	if v := g.verifier(plan); v != nil {
		hold := func(resp *llm.ChatResponse) candidate[*llm.ChatResponse] {
			return candidate[*llm.ChatResponse]{v: resp, text: answerText(resp), a: chatAttempt(req, plan, r, resp, started)}
		}
		next := func() (candidate[*llm.ChatResponse], error) {
			resp, err := try(r, attempt)
			if err != nil {
				return candidate[*llm.ChatResponse]{}, err
			}
			return hold(resp), nil
		}
		c := cascade(ctx, r, v, call, req, tab, hold(resp), next)
		resp, r.route = c.v, c.a.Target
	} else {
		tab.Record(chatAttempt(req, plan, r, resp, started))
	}
	out := r.outcome()
	out.settle = tab.Close
	g.shadow(call, plan, req, answerText(resp), out.Route)
	return resp, out, nil
}

// Embeddings answers an embeddings request.
func (g *Gateway) Embeddings(ctx context.Context, call *Call, req *llm.EmbeddingRequest) (*llm.EmbeddingResponse, Outcome, error) {
	plan, err := g.Router.Plan(&router.Request{Model: req.Model})
	if err != nil {
		return nil, Outcome{}, err
	}
	tab, err := g.open(ctx, call, Estimate{Plan: plan.Targets, PromptTokens: int64(len(req.Input)+2) / 3})
	if err != nil {
		return nil, Outcome{}, err
	}
	timing.From(ctx).Routed()
	started := time.Now()
	r := g.newRun(ctx, plan)
	resp, err := try(r, func(p provider.Provider, t router.Target) (*llm.EmbeddingResponse, error) {
		e, ok := p.(provider.Embedder)
		if !ok {
			return nil, unsupported(t, "embeddings")
		}
		req := *req
		req.Model = t.Model
		actx, _, end := g.startAttempt(ctx, t)
		resp, err := e.Embeddings(actx, &req)
		end(err)
		return resp, err
	})
	out := r.outcome()
	if err != nil {
		tab.Close()
		return nil, out, err
	}
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

// Images answers an image generation request. Images are priced per image
// (by size and quality) and held against budgets like tokens; the bill
// settles before the answer goes out.
func (g *Gateway) Images(ctx context.Context, call *Call, req *llm.ImageRequest) (*llm.ImageResponse, Outcome, error) {
	plan, err := g.Router.Plan(&router.Request{Model: req.Model})
	if err != nil {
		return nil, Outcome{}, err
	}
	asked := Images{N: 1, Size: req.Size, Quality: req.Quality}
	if req.N != nil {
		asked.N = int64(*req.N)
	}
	tab, err := g.open(ctx, call, Estimate{Plan: plan.Targets, Images: asked})
	if err != nil {
		return nil, Outcome{}, err
	}
	defer tab.Close()
	timing.From(ctx).Routed()
	started := time.Now()
	r := g.newRun(ctx, plan)
	resp, err := try(r, func(p provider.Provider, t router.Target) (*llm.ImageResponse, error) {
		ig, ok := p.(provider.ImageGenerator)
		if !ok {
			return nil, unsupported(t, "image generation")
		}
		req := *req
		req.Model = t.Model
		actx, _, end := g.startAttempt(ctx, t)
		resp, err := ig.ImageGeneration(actx, &req)
		end(err)
		return resp, err
	})
	out := r.outcome()
	if err != nil {
		return nil, out, err
	}
	delivered := asked
	delivered.N = int64(len(resp.Data))
	a := Attempt{Target: out.Route, Number: out.Attempts, Images: delivered, Status: "ok", Latency: time.Since(started)}
	if u := resp.Usage; u != nil {
		// Recorded for the report; an image request is priced per image.
		a.Usage = llm.Usage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, TotalTokens: u.TotalTokens}
	}
	tab.Record(a)
	return resp, out, nil
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
