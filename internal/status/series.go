package status

import (
	"sort"
	"time"
)

// Point is one five-minute bucket of a target's day, for charts.
type Point struct {
	At       time.Time `json:"at"`
	Requests int       `json:"requests"`
	Failed   int       `json:"failed"`
	TTFTP50  float64   `json:"ttft_p50_ms"`
}

// DaySeries is each target's buckets over the last day, oldest first
// (buckets with no calls left out).
func (t *Tracker) DaySeries() map[string][]Point {
	from := t.Now().Add(-24 * time.Hour).Unix()
	out := map[string][]Point{}
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, ts := range t.targets {
		var ps []Point
		for i := range ts.ring {
			b := &ts.ring[i]
			if b.start == 0 || b.start < from || b.ok+b.failed == 0 {
				continue
			}
			ps = append(ps, Point{At: time.Unix(b.start, 0).UTC(), Requests: b.ok + b.failed, Failed: b.failed, TTFTP50: quantile(b.ttft[:], 0.5)})
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].At.Before(ps[j].At) })
		out[name] = ps
	}
	return out
}
