package gateway

import (
	"context"
	"encoding/json"
	"maps"
	"strconv"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/router"
)

// LoadObserver learns self-hosted targets' load from the gateway's own
// calls (internal/load): what is in flight, when first tokens come, what
// each call produced.
type LoadObserver interface {
	Start(t router.Target, batch bool) LoadCall
}

// LoadCall is one attempt as the load observer sees it; nil-safe
// implementations let untracked targets cost nothing.
type LoadCall interface {
	FirstToken()
	Tokens(output int)
	Done(err error)
}

type loadCallKey struct{}

// startLoad counts an attempt in the load observer; the call rides in ctx.
func (g *Gateway) startLoad(ctx context.Context, t router.Target) (context.Context, LoadCall) {
	if g.Load == nil {
		return ctx, nil
	}
	c := g.Load.Start(t, priorityOf(ctx) > OnlinePriority)
	return context.WithValue(ctx, loadCallKey{}, c), c
}

// loadCallFrom is the attempt's load call, nil when none.
func loadCallFrom(ctx context.Context) LoadCall {
	c, _ := ctx.Value(loadCallKey{}).(LoadCall)
	return c
}

// OnlinePriority is the priority online requests carry to a server that
// schedules by priority (vLLM: lower is served first; 0 is its default).
// Batch work is sent with a larger value, so the server lets online work pass.
const OnlinePriority = 0

type priorityKey struct{}

// WithPriority sends the requests made under ctx with priority p to
// servers that schedule by priority (scheduling: priority); p above
// OnlinePriority marks batch work.
func WithPriority(ctx context.Context, p int) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

func priorityOf(ctx context.Context) int {
	if p, ok := ctx.Value(priorityKey{}).(int); ok {
		return p
	}
	return OnlinePriority
}

type pinKey struct{}

// WithTarget sends the requests made under ctx to t alone (its provider
// and model, any credential): the tidal gate admits a batch item to one
// target with room and steers it there. When t is not in a request's plan,
// or fails, the request fails: the item is tried again later, rather than
// spilling onto a target that has no room for it.
func WithTarget(ctx context.Context, t router.Target) context.Context {
	t.Credential = ""
	return context.WithValue(ctx, pinKey{}, t)
}

// pinned narrows plan to the target ctx steers to, if any.
func pinned(ctx context.Context, plan *router.Plan) *router.Plan {
	pin, ok := ctx.Value(pinKey{}).(router.Target)
	if !ok {
		return plan
	}
	p := *plan
	p.Targets = nil
	for _, t := range plan.Targets {
		if t.Provider == pin.Provider && t.Model == pin.Model {
			p.Targets = append(p.Targets, t)
		}
	}
	p.Reason = "steered to " + pin.String() + " by the tidal gate"
	return &p
}

// forTarget copies a request with the target's own model name; a target
// that schedules by priority gets the request's priority, replacing any
// the client sent (a client cannot jump the queue of other online work).
func (g *Gateway) forTarget(ctx context.Context, req *llm.ChatRequest, t router.Target) *llm.ChatRequest {
	r := forTarget(req, t)
	if g.Router == nil || !g.Router.SchedulesByPriority(t) {
		return r
	}
	r.Extra = maps.Clone(r.Extra)
	if r.Extra == nil {
		r.Extra = map[string]json.RawMessage{}
	}
	r.Extra["priority"] = json.RawMessage(strconv.Itoa(priorityOf(ctx)))
	return r
}
