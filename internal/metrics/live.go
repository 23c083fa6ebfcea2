package metrics

import "github.com/prometheus/client_golang/prometheus"

// RouteQuality is an ability route's live quality estimate at scrape time.
type RouteQuality struct {
	Route    string
	Quality  float64 // mean verdict, 0–1
	Verdicts int     // in the rolling window; 0: no estimate
	Demoted  int     // targets moved away from for low live quality
}

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
type liveQuality struct{ routes func() []RouteQuality }

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
