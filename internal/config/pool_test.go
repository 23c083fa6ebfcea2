package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const poolYAML = `
providers:
  - {name: h100, type: vllm, base_url: http://gpu-a:8000/v1, models: [qwen], accelerator: h100,
     cost_per_hour: {amount: 21.6, currency: CNY}, scheduling: priority, metrics_url: http://gpu-a:8000/metrics}
  - {name: l4, type: sglang, models: [qwen], cost_per_hour: {amount: 1.5, currency: USD}}
  - {name: ds, type: deepseek, api_key: k, models: [deepseek-chat]}
models:
  - {name: chat, balance: load, ttft_slo: 800ms, targets: [l4/qwen, h100/qwen, ds/deepseek-chat]}
`

func TestPoolConfig(t *testing.T) {
	cfg, err := Parse([]byte(poolYAML), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Providers[0]
	if h.Accelerator != "h100" || h.Scheduling != "priority" || h.MetricsURL != "http://gpu-a:8000/metrics" {
		t.Errorf("provider: %+v", h)
	}
	if d := cmp.Diff(&Money{Amount: 21.6, Currency: "CNY"}, h.CostPerHour); d != "" {
		t.Error(d)
	}
	if m := cfg.Models[0]; m.Balance != BalanceLoad || m.TTFTSLO != 800*time.Millisecond {
		t.Errorf("model: %+v", m)
	}
	if got, ok := cfg.CostPerHourCNY(&cfg.Providers[1]); !ok || got != 1.5*7.2 {
		t.Errorf("USD cost in CNY = %v, %v", got, ok)
	}
}

func TestPoolConfigErrors(t *testing.T) {
	const vllm = "providers: [{name: a, type: vllm, cost_per_hour: {amount: 1, currency: CNY}}, {name: o, type: openai, api_key: k}]\n"
	cases := []struct{ name, yaml, want string }{
		{"hosted cost", "providers: [{name: o, type: openai, api_key: k, cost_per_hour: {amount: 1, currency: CNY}}]\n",
			"providers[0]: accelerator, cost_per_hour, scheduling and metrics_url are only for self-hosted types"},
		{"currency", "providers: [{name: a, type: vllm, cost_per_hour: {amount: 1, currency: EUR}}]\n", `providers[0].cost_per_hour.currency: want CNY or USD, got "EUR"`},
		{"amount", "providers: [{name: a, type: vllm, cost_per_hour: {amount: -2, currency: CNY}}]\n", "providers[0].cost_per_hour.amount: want a positive number"},
		{"amount nan", "providers: [{name: a, type: vllm, cost_per_hour: {amount: .nan, currency: CNY}}]\n", "providers[0].cost_per_hour.amount"},
		{"scheduling", "providers: [{name: a, type: vllm, scheduling: urgent}]\n", `providers[0].scheduling: want priority or fcfs, got "urgent"`},
		{"priority on tgi", "providers: [{name: a, type: tgi, scheduling: priority}]\n", "providers[0].scheduling: priority scheduling is for vllm, sglang, sim servers, not tgi"},
		{"metrics url", "providers: [{name: a, type: vllm, metrics_url: 'gpu:9/metrics'}]\n", "providers[0].metrics_url"},
		{"balance", vllm + "models: [{name: m, targets: [a/x], balance: cheapest}]\n", `models[0].balance: want load, got "cheapest"`},
		{"slo missing", vllm + "models: [{name: m, targets: [a/x], balance: load}]\n", "models[0].ttft_slo: balance: load needs a time-to-first-token goal"},
		{"slo alone", vllm + "models: [{name: m, targets: [a/x], ttft_slo: 1s}]\n", "models[0].ttft_slo: is only for balance: load"},
		{"no self-hosted", vllm + "models: [{name: m, targets: [o/gpt], balance: load, ttft_slo: 1s}]\n", "models[0].balance: balance: load needs at least one self-hosted target"},
		{"no cost", "providers: [{name: a, type: vllm}]\nmodels: [{name: m, targets: [a/x], balance: load, ttft_slo: 1s}]\n",
			`models[0].targets[0]: balance: load needs cost_per_hour on provider "a"`},
		{"with weights", vllm + "models: [{name: m, targets: [a/x, a/y], weights: [1, 1], balance: load, ttft_slo: 1s}]\n", "models[0].balance: balance: load excludes weights"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
