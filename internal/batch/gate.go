package batch

import "context"

// Gate admits batch items to a route (the public model or provider/model a
// line names). The executor holds a slot for the whole of an item's call.
// The default, LimitGate, only bounds concurrency; a capacity-aware gate
// (fill targets only while they have spare capacity, step aside when online
// load rises) replaces it by being assigned to Executor.Gate.
type Gate interface {
	// Acquire waits until an item may go to route, or ctx ends (the item
	// is then tried again later). release gives the slot back.
	Acquire(ctx context.Context, route string) (release func(), err error)
}

// LimitGate lets at most N items run at once, across all routes.
type LimitGate struct{ slots chan struct{} }

// NewLimitGate makes a gate of n slots (at least 1).
func NewLimitGate(n int) *LimitGate {
	return &LimitGate{slots: make(chan struct{}, max(n, 1))}
}

// Acquire takes a slot.
func (g *LimitGate) Acquire(ctx context.Context, _ string) (func(), error) {
	select {
	case g.slots <- struct{}{}:
		return func() { <-g.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
