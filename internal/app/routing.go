package app

import (
	"log/slog"
	"time"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/router"
)

// abilityDeps is what ability routes read: the suites' results and the
// targets' prices. abilities collects the routes built, to be refreshed.
type abilityDeps struct {
	results   ability.Results // the store: each suite's latest done run
	catalog   *ledger.Catalog
	logger    *slog.Logger
	abilities map[string]*ability.Route
	// loads forecasts self-hosted targets for balance: load routes.
	loads router.Forecaster
}

// newRouter turns the config's providers and models into the router's
// plans: each route's policy as data.
func newRouter(cfg *config.Config, ab *abilityDeps) *router.Router {
	learned := router.NewLearned()
	rc := router.Config{Learned: learned}
	for _, p := range cfg.Providers {
		rp := router.Provider{Name: p.Name, Models: p.Models, Targets: map[string]router.TargetSpec{}, Priority: p.Scheduling == "priority"}
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
		rt := router.Route{Name: m.Name, Resume: m.Resume, MaxConcurrency: m.MaxConcurrency, Order: orderPolicy(cfg, m, learned, ab)}
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
func orderPolicy(cfg *config.Config, m config.Model, learned *router.Learned, ab *abilityDeps) router.Policy {
	switch {
	case m.Route != nil && m.Route.Ability != nil:
		a := &ability.Route{Name: m.Name, Suite: m.Route.Ability.Suite, Bar: m.Route.Ability.Quality,
			Results: ab.results, Cost: blendedCost(cfg, ab.catalog), Logger: ab.logger}
		for _, t := range m.Targets {
			tg, _ := router.ParseTarget(t)
			a.Targets = append(a.Targets, tg)
		}
		ab.abilities[m.Name] = a
		return a
	case m.Balance == config.BalanceLoad:
		return &router.Balanced{SLO: m.TTFTSLO, Loads: ab.loads}
	case m.Weights != nil:
		return &router.Weighted{Weights: m.Weights}
	case m.Order == "latency":
		return &router.Fastest{Learned: learned}
	}
	return router.Listed{}
}

// blendedCost is a target's price now, per 1M tokens, input and output
// averaged (an ability route compares targets on the same prompts, so the
// mix of input and output is alike), in CNY so two currencies compare.
func blendedCost(cfg *config.Config, catalog *ledger.Catalog) ability.CostFunc {
	types := map[string]string{}
	for _, p := range cfg.Providers {
		types[p.Name] = p.Type
	}
	return func(t router.Target) (float64, bool) {
		if catalog == nil {
			return 0, false
		}
		p, ok := catalog.Lookup(t.Provider, types[t.Provider], t.Model, 0, time.Now())
		if !ok {
			return 0, false
		}
		c := (p.Input + p.Output) / 2
		if p.Currency == "USD" {
			c *= cfg.Budgets.USDToCNY
		}
		return c, true
	}
}
