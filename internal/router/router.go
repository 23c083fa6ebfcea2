// Package router turns the model a client asks for into an ordered plan of
// targets: a provider and the provider's own model name.
package router

import (
	"fmt"
	"math"
	"math/rand/v2"
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

// Route is a public model name and its targets in order of preference, or,
// with Weights, in an order drawn by weight for each request.
type Route struct {
	Name    string
	Targets []Target
	// Weights, when set (one per target), split traffic: each request's plan
	// starts with a target drawn by weight, the others follow as fallbacks
	// in weighted order. A weight of 0 makes a target fallback-only.
	Weights []float64
}

// Router holds the routes and the providers' model lists. It is immutable once built.
type Router struct {
	routes  map[string][]Target
	weights map[string][]float64
	// Rand draws weighted orders; nil uses math/rand/v2.
	Rand func() float64
	// credentials lists each provider's credential ids when it has several;
	// swapped whole when credentials are added or removed while serving.
	credentials atomic.Pointer[credentialSet]
	names       []string // public names in config order
	// models per provider; an empty set means the provider serves any name.
	models map[string]map[string]bool
	order  []string // providers in config order
}

// New builds a router. providerModels maps each provider to the models it
// lists (nil or empty: any model).
func New(providerOrder []string, providerModels map[string][]string, routes []Route) *Router {
	r := &Router{routes: make(map[string][]Target), weights: make(map[string][]float64), models: make(map[string]map[string]bool), order: providerOrder}
	for _, p := range providerOrder {
		set := make(map[string]bool)
		for _, m := range providerModels[p] {
			set[m] = true
		}
		r.models[p] = set
	}
	for _, rt := range routes {
		r.routes[rt.Name] = rt.Targets
		if len(rt.Weights) == len(rt.Targets) {
			r.weights[rt.Name] = rt.Weights
		}
		r.names = append(r.names, rt.Name)
	}
	return r
}

// Plan returns the targets for a requested model: a public name first, then
// "provider/model".
func (r *Router) Plan(model string) ([]Target, error) {
	if model == "" {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "missing_model", Param: "model", Message: "model is required"}
	}
	if ts, ok := r.routes[model]; ok {
		if w := r.weights[model]; w != nil {
			return r.expand(r.weightedOrder(ts, w)), nil
		}
		return r.expand(ts), nil
	}
	if t, ok := ParseTarget(model); ok {
		if set, known := r.models[t.Provider]; known && (len(set) == 0 || set[t.Model]) {
			return r.expand([]Target{t}), nil
		}
	}
	return nil, &provider.Error{Kind: provider.KindNotFound, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("the model %q does not exist; GET /v1/models lists the models", truncate(model, 128))}
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

// weightedOrder draws an order in which each target comes first with a
// probability proportional to its weight (keys u^(1/w), largest first).
func (r *Router) weightedOrder(ts []Target, w []float64) []Target {
	draw := r.Rand
	if draw == nil {
		draw = rand.Float64
	}
	keys := make([]float64, len(ts))
	idx := make([]int, len(ts))
	for i := range ts {
		idx[i] = i
		if w[i] > 0 {
			keys[i] = math.Pow(draw(), 1/w[i])
		} else {
			keys[i] = -1 // fallback only
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] > keys[idx[b]] })
	out := make([]Target, len(ts))
	for i, j := range idx {
		out[i] = ts[j]
	}
	return out
}

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
