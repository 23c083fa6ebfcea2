package console

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/tidegate/tidegate/internal/status"
)

// StatusSource is the live state of the targets (status.Tracker).
type StatusSource interface {
	Report() status.Report
	DaySeries() map[string][]status.Point
}

type providersData struct {
	Report   status.Report
	Requests chart
	TTFT     chart
}

// seriesCharts turns each target's buckets into two charts on one time
// axis: requests per five minutes and TTFT p50.
func seriesCharts(series map[string][]status.Point, now time.Time) (req, ttft chart) {
	day := &[2]int64{now.Add(-24 * time.Hour).Unix(), now.Unix()}
	req = chart{Title: "Requests per 5 minutes, last day", Unit: "requests", Range: day}
	ttft = chart{Title: "Time to first token, p50 (streams)", Unit: "ms", Range: day}
	xs := map[int64]bool{}
	for _, ps := range series {
		for _, p := range ps {
			xs[p.At.Unix()] = true
		}
	}
	req.X = slices.Sorted(maps.Keys(xs))
	ttft.X = req.X
	for _, name := range slices.Sorted(maps.Keys(series)) {
		at := map[int64]status.Point{}
		for _, p := range series[name] {
			at[p.At.Unix()] = p
		}
		rs, ts := make([]*float64, len(req.X)), make([]*float64, len(req.X))
		for i, x := range req.X {
			p := at[x]
			rs[i] = num(float64(p.Requests))
			if p.TTFTP50 > 0 { // whole answers have no first token
				ts[i] = num(p.TTFTP50)
			}
		}
		req.Series, req.Ys = append(req.Series, name), append(req.Ys, rs)
		ttft.Series, ttft.Ys = append(ttft.Series, name), append(ttft.Ys, ts)
	}
	return req, ttft
}

func (c *Console) providers(w http.ResponseWriter, r *http.Request) {
	var d providersData
	if c.cfg.Status != nil {
		d.Report = c.cfg.Status.Report()
		d.Requests, d.TTFT = seriesCharts(c.cfg.Status.DaySeries(), c.cfg.Now())
	}
	c.render(w, r, http.StatusOK, "providers", "Providers", d)
}
