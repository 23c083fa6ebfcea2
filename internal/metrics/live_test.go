package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/router"
)

func TestLiveQualityMetric(t *testing.T) {
	m := New(Sources{Targets: func() []router.Target { return nil }, LiveQuality: func() []ability.LiveReport {
		return []ability.LiveReport{{Route: "tickets", Quality: 0.75, Verdicts: 40, Demoted: 1}, {Route: "quiet"}}
	}})
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	var got []string
	for _, l := range strings.Split(rr.Body.String(), "\n") {
		if strings.HasPrefix(l, "tidegate_route_") {
			got = append(got, l)
		}
	}
	want := []string{
		`tidegate_route_demoted_targets{route="quiet"} 0`,
		`tidegate_route_demoted_targets{route="tickets"} 1`,
		`tidegate_route_live_quality{route="tickets"} 0.75`,
		`tidegate_route_live_verdicts{route="quiet"} 0`,
		`tidegate_route_live_verdicts{route="tickets"} 40`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("live quality series (-want +got):\n%s", d)
	}
}
