package router

import (
	"time"

	"github.com/tidegate/tidegate/internal/llm"
)

// Route is a public model name and its policy, as data: the targets it may
// use, how to order them for a request, and how to call them.
type Route struct {
	Name    string
	Targets []Target
	// Order orders the targets for each request; nil keeps them as listed.
	Order Policy
	// Hedge, when set, races the next target against a stream whose first
	// target has not produced a token in time.
	Hedge *Hedge
	// Resume continues a broken text stream on the next target (opt-in: the
	// targets must honour a prefix message).
	Resume bool
	// MaxConcurrency bounds the route's requests in flight; 0: unbounded.
	MaxConcurrency int
}

// Hedge configures hedging for a route.
type Hedge struct {
	// After is the delay before racing a second target; 0 uses the first
	// target's learned p95 time to first token (1 s until learned).
	After time.Duration
}

// TargetSpec is what the fleet declares of one "provider/model".
type TargetSpec struct {
	// ContextWindow is the model's context length in tokens; 0: unknown.
	ContextWindow int
	// Lacks lists capabilities the model does not have ("tools", "vision").
	Lacks []string
	// MaxConcurrency bounds calls in flight to the target; 0: unbounded.
	MaxConcurrency int
}

// Provider declares one provider to the router.
type Provider struct {
	Name string
	// Models the provider serves; none: any model name.
	Models []string
	// Targets declares known facts per model name.
	Targets map[string]TargetSpec
	// Priority: the server orders its queue by a request's priority field
	// (scheduling: priority), so online requests are sent ahead of batch work.
	Priority bool
}

// Request is what planning needs to know of a request.
type Request struct {
	Model  string
	Stream bool
	// PromptBytes sizes the prompt, for context windows.
	PromptBytes int64
	// Needs lists the capabilities the request needs ("tools", "vision").
	Needs []string
	// Messages is the prompt, for policies that choose by what it asks
	// (ability routes); nil where the request has none.
	Messages []llm.Message
}
