package router

import "time"

// Plan is a request's finished plan: its route's policy and the targets to
// try, ordered, filtered, one per credential.
type Plan struct {
	Route   *Route
	Targets []Target
	// Reason is why the route's policy chose this order, when it says
	// (ability routes): shown in the request record.
	Reason string
	r      *Router
}

// Spec is what the fleet declares of t.
func (p *Plan) Spec(t Target) TargetSpec {
	t.Credential = ""
	return p.r.specs[t]
}

// LargerContext reports whether t has a known context window larger than
// failed's: after a context-length error only such targets may follow.
func (p *Plan) LargerContext(t, failed Target) bool {
	fw, tw := p.Spec(failed).ContextWindow, p.Spec(t).ContextWindow
	return fw > 0 && tw > fw
}

// HedgeDelay is when a second target races the first; 0: no hedging.
func (p *Plan) HedgeDelay() time.Duration {
	h := p.Route.Hedge
	if h == nil || len(p.Targets) < 2 {
		return 0
	}
	if h.After > 0 {
		return h.After
	}
	if p95, ok := p.r.Learned.TTFT.P95(p.Targets[0]); ok {
		return p95
	}
	return time.Second
}

// TakeRoute takes a slot on the route; false when it is at its limit.
func (p *Plan) TakeRoute() (release func(), ok bool) { return p.r.routeSlots.Take(p.Route.Name) }

// TakeTarget takes a slot on t; false when it is at its limit.
func (p *Plan) TakeTarget(t Target) (release func(), ok bool) {
	return p.r.targetSlots.Take(t.String())
}
