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
