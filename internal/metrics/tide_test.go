package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/router"
)

// TestTideAndBatchProgress: the tidal gate's view per target and each open
// batch's progress are on /metrics.
func TestTideAndBatchProgress(t *testing.T) {
	m := New(Sources{Targets: func() []router.Target { return nil },
		Tide: func() []TideTarget {
			return []TideTarget{{Target: "l4/q", Held: 3, Limit: 7, Online: 2, Level: 0.9, Admitted: 41}}
		},
		Batches: func() (BatchProgress, bool) {
			return BatchProgress{Progress: map[string]float64{"batch_abc": 0.25}}, true
		},
	})
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rr.Body)
	for _, want := range []string{
		`tidegate_tide_batch_in_flight{target="l4/q"} 3`,
		`tidegate_tide_batch_limit{target="l4/q"} 7`,
		`tidegate_tide_online_sequences{target="l4/q"} 2`,
		`tidegate_tide_fill_level{target="l4/q"} 0.9`,
		`tidegate_tide_batch_admitted_total{target="l4/q"} 41`,
		`tidegate_batch_progress_ratio{batch="batch_abc"} 0.25`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
