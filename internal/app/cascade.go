package app

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/router"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/gateway"
)

// verifiers builds the checks of the config's cascade routes, by route.
func verifiers(cfg *config.Config, gw *gateway.Gateway) (map[string]gateway.Verifier, error) {
	out := map[string]gateway.Verifier{}
	for _, m := range cfg.Models {
		if m.Route == nil || m.Route.Ability == nil || m.Route.Ability.Verify == "" {
			continue
		}
		a := m.Route.Ability
		expected, err := a.VerifyExpected()
		if err != nil {
			return nil, fmt.Errorf("models %s: route.ability: %w", m.Name, err)
		}
		v, err := gateway.NewGraderVerifier(gw, a.Verify, expected, cfg.Evals.Judge)
		if err != nil {
			return nil, fmt.Errorf("models %s: route.ability: %w", m.Name, err)
		}
		out[m.Name] = v
	}
	return out, nil
}

// shadows builds the shadow settings of the ability routes that ask for one.
func shadows(cfg *config.Config, routes map[string]*ability.Route) map[string]*gateway.Shadow {
	out := map[string]*gateway.Shadow{}
	for _, m := range cfg.Models {
		r := routes[m.Name]
		if r == nil || m.Route.Ability.Shadow <= 0 {
			continue
		}
		out[m.Name] = &gateway.Shadow{Share: m.Route.Ability.Shadow, Best: r.Best,
			Observe: func(t router.Target, agreement float64) { r.Observe(t, agreement) }}
	}
	return out
}

// observeFeedback hands a verdict to its ability route's live quality.
// Verdicts are also in the store; this replica learns of its own at once.
func observeFeedback(routes map[string]*ability.Route, logger *slog.Logger) func(ability.Feedback) {
	return func(fb ability.Feedback) {
		r := routes[fb.Route]
		t, ok := router.ParseTarget(fb.Target)
		if r == nil || !ok {
			return // not an ability route, or no longer one
		}
		if !r.Observe(t, fb.Score) {
			logger.Debug("feedback on a target no longer on its route", "route", fb.Route, "target", fb.Target)
		}
	}
}

// liveQuality reports the ability routes' live quality, by name.
func liveQuality(routes map[string]*ability.Route) func() []ability.LiveReport {
	names := slices.Sorted(maps.Keys(routes))
	return func() []ability.LiveReport {
		out := make([]ability.LiveReport, 0, len(names))
		for _, n := range names {
			out = append(out, routes[n].Live())
		}
		return out
	}
}
