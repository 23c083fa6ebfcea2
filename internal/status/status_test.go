package status

import (
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/router"
)

func TestServing(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	out := func(from, until int) router.Outage { return router.Outage{From: at(from), Until: at(until)} }
	tests := []struct {
		name    string
		outages [][]router.Outage // per credential
		want    float64
	}{
		{"never out", [][]router.Outage{nil}, 1},
		{"out a quarter of the hour", [][]router.Outage{{out(10, 25)}}, 0.75},
		{"clipped to the window", [][]router.Outage{{out(-30, 6), out(54, 90)}}, 0.8},
		{"one of two credentials out: still serving", [][]router.Outage{{out(0, 30)}, nil}, 1},
		{"both out together only part of the time", [][]router.Outage{{out(0, 30)}, {out(15, 45)}}, 0.75},
	}
	for _, tt := range tests {
		if got := serving(tt.outages, at(0), at(60)); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("%s: serving %.4f, want %.4f", tt.name, got, tt.want)
		}
	}
}

func TestQuantileOfLogHistogram(t *testing.T) {
	var h [ttftBins]uint32
	for _, ms := range []float64{10, 10, 10, 10, 10, 10, 10, 10, 10, 500} {
		h[ttftBin(ms)]++
	}
	if p50 := quantile(h[:], 0.5); p50 < 8 || p50 > 12.5 {
		t.Errorf("p50 %.1f, want about 10", p50)
	}
	if p95 := quantile(h[:], 0.95); p95 < 400 || p95 > 625 {
		t.Errorf("p95 %.1f, want about 500", p95)
	}
}
