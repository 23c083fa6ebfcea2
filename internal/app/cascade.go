package app

import (
	"fmt"

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
