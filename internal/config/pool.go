package config

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"

	"github.com/tidegate/tidegate/internal/router"
)

// SelfHostedTypes are the provider types that run on the team's own
// accelerators: they may declare a cost per hour and a scheduling mode, and
// tidegate reads their load. sim stands in for them in demos and tests.
var SelfHostedTypes = []string{"vllm", "sglang", "tgi", "llamacpp", "ollama", "sim"}

// priorityTypes are the servers that schedule by a request's priority field.
var priorityTypes = []string{"vllm", "sglang", "sim"}

// SelfHosted reports whether p runs on the team's own accelerators.
func (p *Provider) SelfHosted() bool { return slices.Contains(SelfHostedTypes, p.Type) }

// Money is an amount in a currency (CNY or USD).
type Money struct {
	Amount   float64 `yaml:"amount"`
	Currency string  `yaml:"currency"`
}

// maxCostPerHour bounds a declared accelerator cost: far above any card's
// rent, low enough that cost arithmetic stays exact.
const maxCostPerHour = 1e6

// Balance modes of a model.
const BalanceLoad = "load"

// validatePool checks the self-hosted pool fields of providers and models.
func (c *Config) validatePool(providers map[string]*Provider, bad func(field, format string, args ...any)) {
	hosted := strings.Join(SelfHostedTypes, ", ")
	for i := range c.Providers {
		p := &c.Providers[i]
		f := fmt.Sprintf("providers[%d]", i)
		self := p.SelfHosted()
		if !self && (p.Accelerator != "" || p.CostPerHour != nil || p.Scheduling != "" || p.MetricsURL != "") {
			bad(f, "accelerator, cost_per_hour, scheduling and metrics_url are only for self-hosted types (%s), not %s", hosted, p.Type)
			continue
		}
		if m := p.CostPerHour; m != nil {
			if m.Currency != "CNY" && m.Currency != "USD" {
				bad(f+".cost_per_hour.currency", "want CNY or USD, got %q", m.Currency)
			}
			if !(m.Amount > 0 && m.Amount <= maxCostPerHour) {
				bad(f+".cost_per_hour.amount", "want a positive number up to %g, got %v", float64(maxCostPerHour), m.Amount)
			}
		}
		switch p.Scheduling {
		case "", "fcfs":
		case "priority":
			if !slices.Contains(priorityTypes, p.Type) {
				bad(f+".scheduling", "priority scheduling is for %s servers, not %s", strings.Join(priorityTypes, ", "), p.Type)
			}
		default:
			bad(f+".scheduling", "want priority or fcfs, got %q", p.Scheduling)
		}
		if p.MetricsURL != "" {
			if u, err := url.Parse(p.MetricsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(f+".metrics_url", "%q is not an http(s) URL", p.MetricsURL)
			}
		}
		if p.Accelerator != "" && !plainModelID(p.Accelerator) {
			bad(f+".accelerator", "%q must not hold spaces or control characters", p.Accelerator)
		}
	}
	for i, m := range c.Models {
		f := fmt.Sprintf("models[%d]", i)
		switch m.Balance {
		case "":
			if m.TTFTSLO != 0 {
				bad(f+".ttft_slo", "is only for balance: load")
			}
			continue
		case BalanceLoad:
		default:
			bad(f+".balance", "want load, got %q", m.Balance)
			continue
		}
		if m.TTFTSLO <= 0 || m.TTFTSLO > 10*60*1e9 {
			bad(f+".ttft_slo", "balance: load needs a time-to-first-token goal such as 1s (at most 10m)")
		}
		if m.Weights != nil || m.Order == "latency" || m.Route != nil {
			bad(f+".balance", "balance: load excludes weights, latency order and ability routes")
		}
		selfHosted := 0
		for j, t := range m.Targets {
			tg, ok := router.ParseTarget(t)
			if !ok || providers[tg.Provider] == nil {
				continue // named by the target checks
			}
			p := providers[tg.Provider]
			if !p.SelfHosted() {
				continue // a hosted target: where the route bursts to
			}
			selfHosted++
			if p.CostPerHour == nil {
				bad(fmt.Sprintf("%s.targets[%d]", f, j), "balance: load needs cost_per_hour on provider %q to compare its cost", tg.Provider)
			}
		}
		if selfHosted == 0 {
			bad(f+".balance", "balance: load needs at least one self-hosted target (%s)", hosted)
		}
	}
}

// CostPerHourCNY is a provider's declared cost in CNY (USD converted at
// budgets.usd_to_cny); false when it declares none.
func (c *Config) CostPerHourCNY(p *Provider) (float64, bool) {
	m := p.CostPerHour
	if m == nil || math.IsNaN(m.Amount) {
		return 0, false
	}
	if m.Currency == "USD" {
		return m.Amount * c.Budgets.USDToCNY, true
	}
	return m.Amount, true
}
