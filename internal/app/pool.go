package app

import (
	"cmp"
	"context"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/load"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/router"
)

// newLoadTracker reads the load of every self-hosted provider: from its
// metrics_url, else its server's default path beside base_url; the
// built-in sim fleet in process.
func newLoadTracker(cfg *config.Config, providers map[string]provider.Provider, a *App) *load.Tracker {
	var servers []load.Server
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		if !p.SelfHosted() {
			continue
		}
		s := load.Server{Name: p.Name, Kind: load.Kind(p.Type), Accelerator: p.Accelerator}
		s.CostPerHour, _ = cfg.CostPerHourCNY(p)
		switch {
		case p.MetricsURL != "":
			s.URL = p.MetricsURL
		case p.Type == "sim":
			if f, ok := providers[p.Name].(*sim.Fleet); ok {
				s.Read = simSignals(f)
			}
		default:
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
