package metrics

import "github.com/prometheus/client_golang/prometheus"

// TideTarget is one target as the tidal gate sees it (internal/tide).
type TideTarget struct {
	Target string
	// Held is batch items out on the target; Limit the most the gate
	// would let it hold at its last look; Online the online sequences it
	// saw then; Level its learned fill level (share of capacity).
	Held, Limit, Online int
	Level               float64
	Admitted            int64
}

var (
	tideHeldDesc     = prometheus.NewDesc("tidegate_tide_batch_in_flight", "Batch items the tidal gate has out on the target.", []string{"target"}, nil)
	tideLimitDesc    = prometheus.NewDesc("tidegate_tide_batch_limit", "Batch items the tidal gate would let the target hold, at its last look.", []string{"target"}, nil)
	tideOnlineDesc   = prometheus.NewDesc("tidegate_tide_online_sequences", "Online sequences the tidal gate saw on the target, at its last look.", []string{"target"}, nil)
	tideLevelDesc    = prometheus.NewDesc("tidegate_tide_fill_level", "The tidal gate's learned fill level for the target (share of its capacity).", []string{"target"}, nil)
	tideAdmittedDesc = prometheus.NewDesc("tidegate_tide_batch_admitted_total", "Batch items the tidal gate admitted to the target.", []string{"target"}, nil)
)

// tide reports the tidal gate's view at each scrape.
type tide struct{ reports func() []TideTarget }

func (t tide) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tideHeldDesc, tideLimitDesc, tideOnlineDesc, tideLevelDesc, tideAdmittedDesc} {
		ch <- d
	}
}

func (t tide) Collect(ch chan<- prometheus.Metric) {
	for _, r := range t.reports() {
		ch <- prometheus.MustNewConstMetric(tideHeldDesc, prometheus.GaugeValue, float64(r.Held), r.Target)
		ch <- prometheus.MustNewConstMetric(tideLimitDesc, prometheus.GaugeValue, float64(r.Limit), r.Target)
		ch <- prometheus.MustNewConstMetric(tideOnlineDesc, prometheus.GaugeValue, float64(r.Online), r.Target)
		ch <- prometheus.MustNewConstMetric(tideLevelDesc, prometheus.GaugeValue, r.Level, r.Target)
		ch <- prometheus.MustNewConstMetric(tideAdmittedDesc, prometheus.CounterValue, float64(r.Admitted), r.Target)
	}
}
