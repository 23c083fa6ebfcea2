package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidegate/tidegate/internal/ability"
)

var (
	liveDesc = prometheus.NewDesc("tidegate_route_live_quality",
		"Ability route's live quality estimate: mean of recent feedback scores and shadow agreement, 0–1.", []string{"route"}, nil)
	verdictsDesc = prometheus.NewDesc("tidegate_route_live_verdicts",
		"Verdicts in an ability route's live quality window.", []string{"route"}, nil)
	demotedDesc = prometheus.NewDesc("tidegate_route_demoted_targets",
		"Targets an ability route moved prompts away from for live quality below its bar.", []string{"route"}, nil)
)

// liveQuality reports the routes' live quality; a route with no verdicts
// has no quality sample (0 would read as "all wrong").
type liveQuality struct{ routes func() []ability.LiveReport }

func (l liveQuality) Describe(ch chan<- *prometheus.Desc) {
	ch <- liveDesc
	ch <- verdictsDesc
	ch <- demotedDesc
}

func (l liveQuality) Collect(ch chan<- prometheus.Metric) {
	for _, r := range l.routes() {
		if r.Verdicts > 0 {
			ch <- prometheus.MustNewConstMetric(liveDesc, prometheus.GaugeValue, r.Quality, r.Route)
		}
		ch <- prometheus.MustNewConstMetric(verdictsDesc, prometheus.GaugeValue, float64(r.Verdicts), r.Route)
		ch <- prometheus.MustNewConstMetric(demotedDesc, prometheus.GaugeValue, float64(r.Demoted), r.Route)
	}
}
