package app

import (
	"cmp"
	"context"
	"slices"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/load"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/router"
)

// newLoadTracker tracks every self-hosted provider: the built-in sim
// fleet read in process; a server that joins the pool (it declares
// accelerator, cost_per_hour, scheduling or metrics_url, or a balance: load
// route lists it) read from its metrics_url, else its default path beside
// base_url. Only those are reported (status, metrics). Others are not scraped (nothing asked for it): they are judged
// by tidegate's in-flight counts alone.
func newLoadTracker(cfg *config.Config, providers map[string]provider.Provider, a *App) *load.Tracker {
	balanced := map[string]bool{}
	routed := map[string][]string{} // provider → the models routes name on it
	for _, m := range cfg.Models {
		for _, t := range m.Targets {
			if tg, ok := router.ParseTarget(t); ok {
				balanced[tg.Provider] = balanced[tg.Provider] || m.Balance == config.BalanceLoad
				routed[tg.Provider] = append(routed[tg.Provider], tg.Model)
			}
		}
	}
	var servers []load.Server
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		if !p.SelfHosted() {
			continue
		}
		pooled := balanced[p.Name] || p.Accelerator != "" || p.CostPerHour != nil || p.Scheduling != "" || p.MetricsURL != ""
		// Status reports the pool's configured targets only, not every
		// model a server's /metrics names.
		s := load.Server{Name: p.Name, Kind: load.Kind(p.Type), Accelerator: p.Accelerator, Pooled: pooled,
			Models: append(slices.Clone(p.Models), routed[p.Name]...), AnyModel: len(p.Models) == 0}
		if p.Sim != nil {
			for _, m := range p.Sim.Models {
				s.Models = append(s.Models, m.Name)
			}
		}
		s.CostPerHour, _ = cfg.CostPerHourCNY(p)
		switch {
		case p.MetricsURL != "":
			s.URL = p.MetricsURL
		case p.Type == "sim":
			if f, ok := providers[p.Name].(*sim.Fleet); ok {
				s.Read = simSignals(f)
			}
		case pooled:
			preset, _ := provider.LookupPreset(p.Type)
			s.URL = load.DefaultURL(s.Kind, cmp.Or(p.BaseURL, preset.BaseURL))
		}
		servers = append(servers, s)
	}
	return load.New(load.Config{Servers: servers, Logger: a.Logger})
}

// simSignals reads an in-process sim fleet's load as a server would report it.
func simSignals(f *sim.Fleet) func(context.Context) (map[string]load.Signals, error) {
	return func(context.Context) (map[string]load.Signals, error) {
		out := map[string]load.Signals{}
		for _, name := range f.Models() {
			l := f.Load(name)
			out[name] = load.Signals{Running: float64(l.Running), Waiting: float64(l.Waiting), HasQueue: true,
				KVCache: l.KVCache, HasKV: true, Generated: float64(l.Generated), HasGenerated: true}
		}
		return out, nil
	}
}

// loadObserver hands the gateway's attempts to the tracker.
type loadObserver struct{ t *load.Tracker }

func (o loadObserver) Start(t router.Target, batch bool) gateway.LoadCall {
	if c := o.t.Start(t, batch); c != nil {
		return c
	}
	return nil // untracked: no interface around a nil pointer
}
