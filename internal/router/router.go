// Package router turns the model a client asks for into an ordered plan of
// targets: a provider and the provider's own model name.
package router

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tidegate/tidegate/internal/provider"
)

// Target is one place a request can go.
type Target struct {
	Provider string
	Model    string
}

func (t Target) String() string { return t.Provider + "/" + t.Model }

// ParseTarget splits "provider/model"; the model part may itself hold slashes.
func ParseTarget(s string) (Target, bool) {
	p, m, ok := strings.Cut(s, "/")
	if !ok || p == "" || m == "" {
		return Target{}, false
	}
	return Target{Provider: p, Model: m}, true
}

// Route is a public model name and its targets in order of preference.
type Route struct {
	Name    string
	Targets []Target
}

// Router holds the routes and the providers' model lists. It is immutable once built.
type Router struct {
	routes map[string][]Target
	names  []string // public names in config order
	// models per provider; an empty set means the provider serves any name.
	models map[string]map[string]bool
	order  []string // providers in config order
}

// New builds a router. providerModels maps each provider to the models it
// lists (nil or empty: any model).
func New(providerOrder []string, providerModels map[string][]string, routes []Route) *Router {
	r := &Router{routes: make(map[string][]Target), models: make(map[string]map[string]bool), order: providerOrder}
	for _, p := range providerOrder {
		set := make(map[string]bool)
		for _, m := range providerModels[p] {
			set[m] = true
		}
		r.models[p] = set
	}
	for _, rt := range routes {
		r.routes[rt.Name] = rt.Targets
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
		return ts, nil
	}
	if t, ok := ParseTarget(model); ok {
		if set, known := r.models[t.Provider]; known && (len(set) == 0 || set[t.Model]) {
			return []Target{t}, nil
		}
	}
	return nil, &provider.Error{Kind: provider.KindNotFound, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("the model %q does not exist; GET /v1/models lists the models", truncate(model, 128))}
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
