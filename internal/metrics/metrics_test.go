package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

// TestLabelsStayBounded: what a client names (an unknown path, a model no
// target serves) never becomes a label value of its own.
func TestLabelsStayBounded(t *testing.T) {
	m := New(Sources{Targets: func() []router.Target { return []router.Target{{Provider: "up", Model: "m"}} }})
	for i, rec := range []timing.Record{
		{Endpoint: "/v1/chat/completions", Route: "up/m", Status: 200, Verdict: timing.Verdict{Kind: "ok"},
			Attempts: []timing.AttemptRecord{{Target: "up/m", TTFT: 40, Chunks: 5, Decode: 40, TokensPerSecond: 100}}},
		{Endpoint: "/v1/made-up-by-a-client-1", Route: "client/chosen-1", Status: 404, ErrorKind: "not_found"},
		{Endpoint: "/v1/made-up-by-a-client-2", Route: "client/chosen-2", Status: 404, ErrorKind: "not_found",
			Attempts: []timing.AttemptRecord{{Target: "client/chosen-2", Error: "upstream_error"}}},
	} {
		rec.ID = string(rune('a' + i))
		m.ObserveRequest(context.Background(), &rec, nil)
	}
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rr.Body)
	text := string(body)
	for _, want := range []string{
		`tidegate_requests_total{endpoint="/v1/chat/completions",status="2xx",target="up/m"} 1`,
		`tidegate_requests_total{endpoint="other",status="4xx",target="other"} 2`,
		`tidegate_attempts_total{outcome="failed",target="other"} 1`,
		`tidegate_inter_token_latency_ms_sum{target="up/m"} 10`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "made-up") || strings.Contains(text, "client/chosen") {
		t.Error("a client-chosen name became a label value")
	}
}
