package app

import (
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/metrics"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/tide"
)

// newTideGate is the batch executor's gate: the tidal dispatcher over the
// router's routes, the pool's live load and the catalog's off-peak hours.
func (a *App) newTideGate(gw *gateway.Gateway, catalog *ledger.Catalog) *tide.Gate {
	slos := map[string]time.Duration{}
	for _, m := range a.Config.Models {
		slos[m.Name] = m.TTFTSLO
	}
	cfg := tide.Config{Routes: gw.Router, SLO: func(route string) time.Duration { return slos[route] },
		HostedConcurrency: a.Config.Batches.Concurrency, Logger: a.Logger}
	if a.Loads != nil {
		cfg.Loads = a.Loads
	}
	if catalog != nil {
		cfg.Prices = offPeak{catalog: catalog, types: providerTypes(a.Config)}
	}
	return tide.New(cfg)
}

func providerTypes(cfg *config.Config) map[string]string {
	types := map[string]string{}
	for _, p := range cfg.Providers {
		types[p.Name] = p.Type
	}
	return types
}

// offPeak reads off-peak hours from the catalog: a target is off-peak
// when the price in force is an off-peak row (when=offpeak:SCHEME).
type offPeak struct {
	catalog *ledger.Catalog
	types   map[string]string
}

func (o offPeak) OffPeak(t router.Target, at time.Time) bool {
	p, ok := o.catalog.Lookup(t.Provider, o.types[t.Provider], t.Model, 0, at)
	return ok && p.When != ""
}

// tideReports is the tidal gate's view for /metrics; nil without batches.
func (a *App) tideReports() func() []metrics.TideTarget {
	if a.Tide == nil {
		return nil
	}
	return func() []metrics.TideTarget {
		rs := a.Tide.Reports()
		out := make([]metrics.TideTarget, len(rs))
		for i, r := range rs {
			out[i] = metrics.TideTarget{Target: r.Target.String(), Held: r.Held, Limit: r.Limit, Online: r.Online, Level: r.Level, Admitted: r.Admitted}
		}
		return out
	}
}
