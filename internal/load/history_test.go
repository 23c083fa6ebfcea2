package load

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/router"
)

func TestReportUtilization(t *testing.T) {
	for _, tc := range []struct {
		name   string
		load   Load
		want   float64
		wantOK bool
	}{
		{"capacity learned", Load{Running: 3, Capacity: 4, KVCache: 0.9}, 0.75, true},
		{"over capacity is full", Load{Running: 9, Capacity: 4, KVCache: -1}, 1, true},
		{"KV cache before capacity", Load{Running: 3, KVCache: 0.4}, 0.4, true},
		{"neither", Load{Running: 3, KVCache: -1}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := Report{Load: tc.load}.Utilization()
			if u != tc.want || ok != tc.wantOK {
				t.Errorf("Utilization() = %v, %v; want %v, %v", u, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func report(model string, running, capacity, waiting int) Report {
	return Report{Target: router.Target{Provider: "gpu", Model: model},
		Load: Load{Running: running, Capacity: capacity, Waiting: waiting, KVCache: -1}}
}

// TestHistoryRing: samples are kept per target, oldest first, and the ring
// drops the oldest once a span is full.
func TestHistoryRing(t *testing.T) {
	h := NewHistory(10*time.Second, 40*time.Second) // 4 samples
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		h.Sample(t0.Add(time.Duration(i)*10*time.Second), []Report{report("a", i, 10, i), report("b", 0, 0, 0)})
	}
	if got, want := h.Targets(), []string{"gpu/a", "gpu/b"}; !cmp.Equal(got, want) {
		t.Errorf("Targets() = %v, want %v", got, want)
	}
	var want []Sample
	for i := 2; i < 6; i++ {
		want = append(want, Sample{At: t0.Add(time.Duration(i) * 10 * time.Second), Utilization: float64(i) / 10, Queue: float64(i)})
	}
	if d := cmp.Diff(want, h.Series("gpu/a", 100), cmpopts.EquateApprox(0, 1e-6)); d != "" {
		t.Errorf("series (-want +got):\n%s", d)
	}
	// A target that reports no utilization keeps its queue, with NaN for it.
	b := h.Series("gpu/b", 100)
	if len(b) != 4 || !math.IsNaN(b[0].Utilization) {
		t.Errorf("gpu/b: %+v", b)
	}
	if s := h.Series("gpu/none", 100); len(s) != 0 {
		t.Errorf("an unknown target has %d samples", len(s))
	}
}

// TestHistoryDownsample: more samples than points are merged, utilization
// by its mean and the queue by its peak, stamped at the group's end.
func TestHistoryDownsample(t *testing.T) {
	h := NewHistory(time.Second, time.Hour)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		h.Sample(t0.Add(time.Duration(i)*time.Second), []Report{report("a", i, 10, 6-i)})
	}
	want := []Sample{
		{At: t0.Add(1 * time.Second), Utilization: 0.05, Queue: 6},
		{At: t0.Add(3 * time.Second), Utilization: 0.25, Queue: 4},
		{At: t0.Add(5 * time.Second), Utilization: 0.45, Queue: 2},
	}
	if d := cmp.Diff(want, h.Series("gpu/a", 3), cmpopts.EquateApprox(0, 1e-6)); d != "" {
		t.Errorf("series (-want +got):\n%s", d)
	}
}
