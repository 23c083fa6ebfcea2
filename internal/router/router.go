// Package router turns the model a client asks for into an ordered plan of
// targets: a provider and the provider's own model name.
package router

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/tidegate/tidegate/internal/provider"
)

// Target is one place a request can go: a provider's model, through one of
// the provider's credentials ("" when it has one).
type Target struct {
	Provider   string
	Model      string
	Credential string
}

// String is the public name, "provider/model": credentials never show.
func (t Target) String() string { return t.Provider + "/" + t.Model }

// ProviderKey names the client that serves t: the provider, or
// "provider#credential" when it has several.
func (t Target) ProviderKey() string {
	if t.Credential == "" {
		return t.Provider
	}
	return t.Provider + "#" + t.Credential
}

// ParseTarget splits "provider/model"; the model part may itself hold slashes.
func ParseTarget(s string) (Target, bool) {
	p, m, ok := strings.Cut(s, "/")
	if !ok || p == "" || m == "" {
		return Target{}, false
	}
	return Target{Provider: p, Model: m}, true
}

// Router turns a requested model into a plan. Routes are fixed once built;
// credentials may change while serving.
type Router struct {
	routes  map[string]*Route
	names   []string              // public names in config order
	specs   map[Target]TargetSpec // by provider and model, no credential
	filters []Filter
	// models per provider; an empty set means the provider serves any name.
	models map[string]map[string]bool
	order  []string // providers in config order
	// priority holds the providers that schedule by a request's priority.
	priority map[string]bool
	// credentials lists each provider's credential ids when it has several;
	// swapped whole when credentials are added or removed while serving.
	credentials             atomic.Pointer[credentialSet]
	targetSlots, routeSlots *Slots
	// Learned is the targets' learned latencies: latency order and hedging
	// read them, the gateway teaches them.
	Learned *Learned
}

// Config is what a router is built from.
type Config struct {
	Providers []Provider // in config order
	Routes    []Route
	// Learned is shared with the policies that read it (latency order);
	// nil: the router makes its own.
	Learned *Learned
}

// New builds a router.
func New(cfg Config) *Router {
	r := &Router{routes: make(map[string]*Route, len(cfg.Routes)), specs: map[Target]TargetSpec{},
		filters: []Filter{Capable{}, Fits{}}, models: make(map[string]map[string]bool), Learned: cfg.Learned}
	if r.Learned == nil {
		r.Learned = NewLearned()
	}
	targetLimits, routeLimits := map[string]int{}, map[string]int{}
	for _, p := range cfg.Providers {
		r.order = append(r.order, p.Name)
		if p.Priority {
			if r.priority == nil {
				r.priority = map[string]bool{}
			}
			r.priority[p.Name] = true
		}
		set := make(map[string]bool)
		for _, m := range p.Models {
			set[m] = true
		}
		r.models[p.Name] = set
		for m, spec := range p.Targets {
			r.specs[Target{Provider: p.Name, Model: m}] = spec
			targetLimits[p.Name+"/"+m] = spec.MaxConcurrency
		}
	}
	for i := range cfg.Routes {
		rt := cfg.Routes[i]
		if rt.Order == nil {
			rt.Order = Listed{}
		}
		r.routes[rt.Name] = &rt
		r.names = append(r.names, rt.Name)
		routeLimits[rt.Name] = rt.MaxConcurrency
	}
	r.targetSlots, r.routeSlots = NewSlots(targetLimits), NewSlots(routeLimits)
	return r
}

// Plan returns the plan for a request: a public name first, then
// "provider/model".
func (r *Router) Plan(req *Request) (*Plan, error) {
	rt, err := r.route(req.Model)
	if err != nil {
		return nil, err
	}
	// Order first: a policy sees the route's targets as configured.
	var ts []Target
	var reason string
	if ex, ok := rt.Order.(Explainer); ok {
		ts, reason = ex.Explain(req, rt.Targets)
	} else {
		ts = rt.Order.Order(req, rt.Targets)
	}
	for _, f := range r.filters {
		if ts, err = r.filter(f, req, ts); err != nil {
			return nil, err
		}
	}
	return &Plan{Route: rt, Targets: r.expand(ts), Reason: reason, r: r}, nil
}

func (r *Router) route(model string) (*Route, error) {
	if model == "" {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "missing_model", Param: "model", Message: "model is required"}
	}
	if rt, ok := r.routes[model]; ok {
		return rt, nil
	}
	if t, ok := ParseTarget(model); ok {
		if set, known := r.models[t.Provider]; known && (len(set) == 0 || set[t.Model]) {
			return &Route{Name: model, Targets: []Target{t}, Order: Listed{}}, nil
		}
	}
	return nil, &provider.Error{Kind: provider.KindNotFound, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("the model %q does not exist; GET /v1/models lists the models", truncate(model, 128))}
}

// filter keeps the targets f keeps; none kept is f's refusal. A plan that
// loses nothing keeps the route's slice (no allocation on the common path).
func (r *Router) filter(f Filter, req *Request, ts []Target) ([]Target, error) {
	if !slices.ContainsFunc(ts, func(t Target) bool { return !f.Keep(req, r.specs[t]) }) {
		return ts, nil
	}
	var kept []Target
	specs := make([]TargetSpec, len(ts))
	for i, t := range ts {
		specs[i] = r.specs[t]
		if f.Keep(req, specs[i]) {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		return nil, f.Refuse(req, specs)
	}
	return kept, nil
}

type credentialSet struct {
	byProvider map[string][]string
	turns      map[string]*atomic.Uint64 // per provider: rotates its first credential across requests
}

// SetCredentials declares the credential ids of providers that have
// several. Safe while serving: plans made after it use the new set.
func (r *Router) SetCredentials(byProvider map[string][]string) {
	cs := &credentialSet{byProvider: byProvider, turns: make(map[string]*atomic.Uint64, len(byProvider))}
	for p := range byProvider {
		cs.turns[p] = new(atomic.Uint64)
	}
	r.credentials.Store(cs)
}

// expand turns each target into one per credential of its provider, the
// first credential rotating across requests to spread the load.
func (r *Router) expand(ts []Target) []Target {
	cs := r.credentials.Load()
	if cs == nil || len(cs.byProvider) == 0 {
		return ts
	}
	out := make([]Target, 0, len(ts))
	for _, t := range ts {
		creds := cs.byProvider[t.Provider]
		if len(creds) == 0 {
			out = append(out, t)
			continue
		}
		turn := int(cs.turns[t.Provider].Add(1))
		for i := range creds {
			c := t
			c.Credential = creds[(turn+i)%len(creds)]
			out = append(out, c)
		}
	}
	return out
}

// SchedulesByPriority reports whether t's server orders its queue by a
// request's priority field.
func (r *Router) SchedulesByPriority(t Target) bool { return r.priority[t.Provider] }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Models lists every addressable name: public names, then provider/model for
// each listed model.
func (r *Router) Models() []string {
	out := append([]string(nil), r.names...)
	for _, p := range r.order {
		ms := make([]string, 0, len(r.models[p]))
		for m := range r.models[p] {
			ms = append(ms, m)
		}
		sort.Strings(ms)
		for _, m := range ms {
			out = append(out, p+"/"+m)
		}
	}
	return out
}

// Targets lists the targets a public name (or "provider/model") may use,
// as configured, before any ordering: the tidal gate reads which servers a
// batch line's model can reach.
func (r *Router) Targets(model string) ([]Target, error) {
	rt, err := r.route(model)
	if err != nil {
		return nil, err
	}
	return slices.Clone(rt.Targets), nil
}
