package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidegate/tidegate/internal/load"
)

var (
	poolRunningDesc = prometheus.NewDesc("tidegate_target_running",
		"Sequences in the self-hosted server's running batch, as its own metrics last said.", []string{"target"}, nil)
	poolQueueDesc = prometheus.NewDesc("tidegate_target_queue",
		"Requests waiting in the self-hosted server's queue, as its own metrics last said.", []string{"target"}, nil)
	poolKVDesc = prometheus.NewDesc("tidegate_target_kv_cache_usage",
		"Share of the self-hosted server's KV cache in use, 0–1 (absent when it reports none).", []string{"target"}, nil)
	poolUtilDesc = prometheus.NewDesc("tidegate_target_utilization",
		"Running sequences over the server's learned capacity, 0–1 (KV-cache use until capacity is learned).", []string{"target"}, nil)
	poolInFlightDesc = prometheus.NewDesc("tidegate_target_in_flight",
		"Calls tidegate has open on the self-hosted target now.", []string{"target"}, nil)
	poolFreshDesc = prometheus.NewDesc("tidegate_target_load_fresh",
		"1 when the server's load metrics are recent; 0 when it is judged by in-flight counts alone.", []string{"target"}, nil)
	poolCostDesc = prometheus.NewDesc("tidegate_target_cost_per_million_tokens",
		"The target's cost_per_hour over the output tokens/s it has shown (full batch), per 1M tokens.", []string{"target", "currency"}, nil)
	poolTokensDesc = prometheus.NewDesc("tidegate_target_output_tokens_total",
		"Output tokens the self-hosted target produced for tidegate, by class (online, batch).", []string{"target", "class"}, nil)
)

// pool reports the self-hosted targets' live load (internal/load).
type pool struct{ reports func() []load.Report }

func (p pool) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolRunningDesc, poolQueueDesc, poolKVDesc, poolUtilDesc, poolInFlightDesc, poolFreshDesc, poolCostDesc, poolTokensDesc} {
		ch <- d
	}
}

func (p pool) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, r := range p.reports() {
		t, l := r.Target.String(), r.Load
		gauge(poolRunningDesc, float64(l.Running), t)
		gauge(poolQueueDesc, float64(l.Waiting), t)
		gauge(poolInFlightDesc, float64(l.InFlight), t)
		fresh := 0.0
		if l.Fresh {
			fresh = 1
		}
		gauge(poolFreshDesc, fresh, t)
		if l.KVCache >= 0 {
			gauge(poolKVDesc, l.KVCache, t)
		}
		if u, ok := r.Utilization(); ok {
			gauge(poolUtilDesc, u, t)
		}
		if r.Forecast.CostPerMTokens > 0 {
			gauge(poolCostDesc, r.Forecast.CostPerMTokens, t, "CNY")
		}
		ch <- prometheus.MustNewConstMetric(poolTokensDesc, prometheus.CounterValue, float64(r.OnlineTokens), t, "online")
		ch <- prometheus.MustNewConstMetric(poolTokensDesc, prometheus.CounterValue, float64(r.BatchTokens), t, "batch")
	}
}
