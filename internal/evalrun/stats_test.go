package evalrun

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/eval"
)

// Reference values: Wilson intervals and t quantiles as published in
// statistics tables (to 4 digits).
func TestWilson(t *testing.T) {
	tests := []struct {
		k, n      int
		low, high float64
	}{
		{0, 0, 0, 1},
		{0, 10, 0, 0.2775},
		{5, 10, 0.2366, 0.7634},
		{10, 10, 0.7225, 1},
		{81, 100, 0.7222, 0.8749},
	}
	for _, tt := range tests {
		low, high := Wilson(tt.k, tt.n)
		if d := cmp.Diff([2]float64{tt.low, tt.high}, [2]float64{low, high}, cmpopts.EquateApprox(0, 1e-4)); d != "" {
			t.Errorf("Wilson(%d, %d) (-want +got):\n%s", tt.k, tt.n, d)
		}
	}
}

func TestTQuantile975(t *testing.T) {
	for df, want := range map[int]float64{1: 12.7062, 2: 4.3027, 3: 3.1824, 10: 2.2281, 30: 2.0423, 1000: 1.9623} {
		if got := TQuantile975(df); math.Abs(got-want) > 1e-3 {
			t.Errorf("TQuantile975(%d) = %.4f, want %.4f", df, got, want)
		}
	}
}

func TestTInterval(t *testing.T) {
	tests := []struct {
		scores          []float64
		mean, low, high float64
	}{
		{nil, 0, 0, 1},
		{[]float64{0.7}, 0.7, 0, 1},
		{[]float64{0.5, 0.5}, 0.5, 0.5, 0.5},
		{[]float64{0.2, 0.4, 0.6, 0.8}, 0.5, 0.0892, 0.9108},
		{[]float64{0, 1, 0.5}, 0.5, 0, 1}, // clamped to 0–1
	}
	for _, tt := range tests {
		mean, low, high := TInterval(tt.scores)
		if d := cmp.Diff([3]float64{tt.mean, tt.low, tt.high}, [3]float64{mean, low, high}, cmpopts.EquateApprox(0, 1e-4)); d != "" {
			t.Errorf("TInterval(%v) (-want +got):\n%s", tt.scores, d)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 10; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		ds   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ds, 0.5, 5 * time.Millisecond},
		{ds, 0.95, 10 * time.Millisecond},
		{ds, 0.9, 9 * time.Millisecond},
		{ds[:1], 0.95, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Percentile(tt.ds, tt.q); got != tt.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tt.ds, tt.q, got, tt.want)
		}
	}
}

func TestPareto(t *testing.T) {
	tests := []struct {
		name string
		ps   []Point
		want []bool
	}{
		{"one", []Point{{0.5, 1}}, []bool{true}},
		{"dominated", []Point{{0.9, 10}, {0.8, 12}, {0.6, 1}}, []bool{true, false, true}},
		{"tie in cost, better quality wins", []Point{{0.7, 5}, {0.8, 5}}, []bool{false, true}},
		{"equal points both stay", []Point{{0.7, 5}, {0.7, 5}}, []bool{true, true}},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, Pareto(tt.ps)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
}

// TestScore: quality, the interval by kind of score, cost per 1,000 tasks
// from the results' ledger costs, latency percentiles, the front.
func TestScore(t *testing.T) {
	run := &eval.Run{ID: "evr_1", Suite: "s", Status: eval.RunDone, Items: 4, Models: []string{"p/cheap", "p/dear", "p/half"}}
	var rs []eval.RunResult
	for i, score := range []float64{1, 0, 1, 1} {
		rs = append(rs, eval.RunResult{Model: "p/cheap", Score: score, CostMicros: 100, Currency: "CNY", Latency: time.Duration(i+1) * time.Millisecond})
		rs = append(rs, eval.RunResult{Model: "p/dear", Score: 1 - score, CostMicros: 5000, Currency: "CNY", Latency: 40 * time.Millisecond, Error: map[bool]string{true: "x"}[i == 0]})
		rs = append(rs, eval.RunResult{Model: "p/half", Score: 0.5, CostMicros: 200, JudgeCostMicros: 10, Currency: "CNY", Latency: time.Millisecond})
	}
	sc := Score(run, rs)
	wl, wh := Wilson(3, 4)
	dl, dh := Wilson(1, 4)
	want := []ModelScore{
		{Model: "p/cheap", Quality: 0.75, QualityLow: wl, QualityHigh: wh, Interval: IntervalWilson, Items: 4,
			Cost: Money{0.0004, "CNY"}, CostPer1000: Money{0.1, "CNY"}, JudgeCost: Money{0, "CNY"}, LatencyP50MS: 2, LatencyP95MS: 4, Pareto: true},
		{Model: "p/dear", Quality: 0.25, QualityLow: dl, QualityHigh: dh, Interval: IntervalWilson, Items: 4, Errors: 1,
			Cost: Money{0.02, "CNY"}, CostPer1000: Money{5, "CNY"}, JudgeCost: Money{0, "CNY"}, LatencyP50MS: 40, LatencyP95MS: 40},
		{Model: "p/half", Quality: 0.5, QualityLow: 0.5, QualityHigh: 0.5, Interval: IntervalT, Items: 4,
			Cost: Money{0.0008, "CNY"}, CostPer1000: Money{0.2, "CNY"}, JudgeCost: Money{0.00004, "CNY"}, LatencyP50MS: 1, LatencyP95MS: 1},
	}
	if d := cmp.Diff(want, sc.Results, cmpopts.EquateApprox(0, 1e-9)); d != "" {
		t.Errorf("Score (-want +got):\n%s", d)
	}
	if sc.Done != 12 || sc.Total != 12 {
		t.Errorf("done %d of %d, want 12 of 12", sc.Done, sc.Total)
	}
}
