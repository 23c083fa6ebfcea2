package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/load"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/metrics"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/status"
	"github.com/tidegate/tidegate/internal/tracing"
)

// observe wires what records and exports requests: the request log, metrics
// and traces. The returned stop flushes them; call it after the server
// drained.
func observe(cfg *config.Config, api *httpapi.Server, gw *gateway.Gateway, meter *ledger.Meter, st reqlog.Store, creds *credentials, live func() []ability.LiveReport, loads *load.Tracker, tideReports func() []metrics.TideTarget, masterKey, version string, logger *slog.Logger) (func(), error) {
	seen := newSeenTargets(creds)
	api.Observers = append(api.Observers, seen) // first: the others label by what it admits
	targets := seen.all
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if rl := cfg.Observe.RequestLog; !rl.Disabled {
		log := reqlog.New(st, logger, reqlog.Options{Retention: rl.Retention, MaxRows: rl.MaxRows, Secrets: func() []string { return unloggable(creds.Providers(), masterKey) }})
		api.Observers = append(api.Observers, log)
		api.Requests = log
		api.CaptureBodies = rl.Bodies
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); log.Run(ctx) }()
		stops = append(stops, func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				logger.Warn("request log did not flush in time")
			}
		})
	}
	tracker := status.New(gw.Health, targets)
	tracker.Routes = live
	if loads.Pooled() { // else status says no pool is configured
		tracker.Pool = loads.Reports
	}
	api.Observers = append(api.Observers, tracker)
	api.Status = tracker
	if mc := cfg.Observe.Metrics; !mc.Disabled {
		src := metrics.Sources{Health: gw.Health, Targets: targets, StreamsInFlight: api.StreamsInFlight, Known: seen.Has, LiveQuality: live}
		if loads != nil {
			src.Pool = loads.Reports
		}
		src.Tide = tideReports
		if meter.Outbox != nil {
			src.Outbox = meter.Outbox.Stats
		}
		if bs, ok := st.(openBatches); ok && !cfg.Batches.Disabled {
			src.Batches = batchProgress(bs, logger)
		}
		m := metrics.New(src)
		api.Observers = append(api.Observers, m)
		meter.Billed = m.Billed
		if mc.Listen == "" {
			api.Metrics = m.Handler()
		} else {
			ctx, cancel := context.WithCancel(context.Background())
			addr, err := metrics.Serve(ctx, mc.Listen, m.Handler())
			if err != nil {
				cancel()
				stop()
				return nil, fmt.Errorf("observe.metrics.listen: %w", err)
			}
			logger.Info("metrics listening", "addr", addr)
			stops = append(stops, cancel)
		}
	}
	if tc := cfg.Observe.Tracing; tc.Endpoint != "" {
		tr, err := tracing.New(context.Background(), tracing.Options{Endpoint: tc.Endpoint, SampleRatio: *tc.SampleRatio,
			ServiceName: tc.ServiceName, Version: version})
		if err != nil {
			stop()
			return nil, err
		}
		api.Observers = append(api.Observers, tr)
		api.Traces = tr
		stops = append(stops, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil {
				logger.Warn("traces not all exported", "error", err.Error())
			}
		})
	}
	return stop, nil
}

// configuredTargets lists every provider × credential × model.
func configuredTargets(providers []config.Provider) []router.Target {
	var targets []router.Target
	for _, p := range providers {
		creds := fleet.CredentialIDs(p)
		if len(creds) == 0 {
			creds = []string{""}
		}
		for _, m := range p.Models {
			for _, c := range creds {
				targets = append(targets, router.Target{Provider: p.Name, Model: m, Credential: c})
			}
		}
	}
	return targets
}

// unloggable are the values the request log must never hold.
func unloggable(providers []config.Provider, masterKey string) []string {
	out := []string{masterKey}
	for _, p := range providers {
		out = append(out, p.APIKey)
		out = append(out, p.APIKeys...)
	}
	return out
}
