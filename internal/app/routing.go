package app

import (
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/router"
)

// newRouter turns the config's providers and models into the router's
// plans: each route's policy as data.
func newRouter(cfg *config.Config) *router.Router {
	learned := router.NewLearned()
	rc := router.Config{Learned: learned}
	for _, p := range cfg.Providers {
		rp := router.Provider{Name: p.Name, Models: p.Models, Targets: map[string]router.TargetSpec{}}
		spec := func(m string) router.TargetSpec {
			s := rp.Targets[m]
			s.MaxConcurrency = p.MaxConcurrency
			return s
		}
		for _, m := range p.Models {
			rp.Targets[m] = spec(m)
		}
		for m, w := range p.ContextWindows {
			s := spec(m)
			s.ContextWindow = w
			rp.Targets[m] = s
		}
		for m, lacks := range p.Unsupported {
			s := spec(m)
			s.Lacks = lacks
			rp.Targets[m] = s
		}
		rc.Providers = append(rc.Providers, rp)
	}
	for _, m := range cfg.Models {
		rt := router.Route{Name: m.Name, Resume: m.Resume, MaxConcurrency: m.MaxConcurrency, Order: orderPolicy(m, learned)}
		for _, t := range m.Targets {
			tg, _ := router.ParseTarget(t) // validated with the config
			rt.Targets = append(rt.Targets, tg)
		}
		if m.Hedge || m.HedgeAfter > 0 {
			rt.Hedge = &router.Hedge{After: m.HedgeAfter}
		}
		rc.Routes = append(rc.Routes, rt)
	}
	return router.New(rc)
}

// orderPolicy is a route's ordering policy: the one place that maps a
// model's config to a router.Policy.
func orderPolicy(m config.Model, learned *router.Learned) router.Policy {
	switch {
	case m.Weights != nil:
		return &router.Weighted{Weights: m.Weights}
	case m.Order == "latency":
		return &router.Fastest{Learned: learned}
	}
	return router.Listed{}
}
