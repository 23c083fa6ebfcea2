package batch

import (
	"context"
	"errors"
	"time"
)

// Ask is what a gate is asked to admit: one item of a batch.
type Ask struct {
	// Route is the line's body.model: a public name or provider/model.
	Route string
	// Created and Expires bound the batch's completion window: a gate may
	// take a path it would otherwise not (a hosted target at its full
	// price) when the window would be missed.
	Created, Expires time.Time
}

// Gate admits batch items to a route. The executor holds a slot for the
// whole of an item's call. The default, LimitGate, only bounds
// concurrency; a capacity-aware gate (internal/tide: fill targets only
// while they have spare capacity, step aside when online load rises)
// replaces it by being assigned to Executor.Gate.
type Gate interface {
	// Acquire waits until an item may go out, or ctx ends, or the gate
	// gives up waiting (the item is then tried again soon, at no cost of
	// an attempt). The returned ctx is the one to call under: a gate may
	// steer the item to one target (gateway.WithTarget). release gives
	// the slot back.
	Acquire(ctx context.Context, a Ask) (context.Context, func(), error)
}

// ErrNoRoom is a gate's answer when nothing had room for the item in the
// time it waited.
var ErrNoRoom = errors.New("batch: no target has room for the item now")

// LimitGate lets at most N items run at once, across all routes.
type LimitGate struct{ slots chan struct{} }

// NewLimitGate makes a gate of n slots (at least 1).
func NewLimitGate(n int) *LimitGate {
	return &LimitGate{slots: make(chan struct{}, max(n, 1))}
}

// Acquire takes a slot.
func (g *LimitGate) Acquire(ctx context.Context, _ Ask) (context.Context, func(), error) {
	select {
	case g.slots <- struct{}{}:
		return ctx, func() { <-g.slots }, nil
	case <-ctx.Done():
		return ctx, nil, ctx.Err()
	}
}
