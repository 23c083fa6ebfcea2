package tracing

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/internal/timing"
)

// TestTailSampling: with a ratio of 0, a healthy request is not exported,
// a failed or slow one is, and so is one whose client sampled its trace;
// every exported request keeps the trace id it was given on arrival.
func TestTailSampling(t *testing.T) {
	var mu sync.Mutex
	traces := map[string]int{} // trace id → spans
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("not OTLP: %v", err)
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					traces[hex.EncodeToString(s.TraceId)]++
				}
			}
		}
		mu.Unlock()
	}))
	defer sink.Close()
	tr, err := New(context.Background(), Options{Endpoint: sink.URL, SampleRatio: 0, ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	record := func(h http.Header, status int, verdict string) *timing.Record {
		rt := timing.New("r", time.Now(), false)
		rt.SetTrace(tr.StartTrace(h))
		_, a := rt.StartAttempt(context.Background(), "up/m", 1)
		a.End("")
		rec := rt.Finish(timing.Meta{Endpoint: "/v1/chat/completions", Status: status}, time.Millisecond)
		rec.Verdict.Kind = verdict
		tr.ObserveRequest(context.Background(), &rec, h)
		return &rec
	}
	healthy := record(http.Header{}, 200, timing.VerdictOK)
	failed := record(http.Header{}, 502, timing.VerdictUpstreamError)
	slow := record(http.Header{}, 200, timing.VerdictPrefill)
	sampled := record(http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}, 200, timing.VerdictOK)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if traces[healthy.TraceID] != 0 {
		t.Errorf("a healthy, unsampled request was exported")
	}
	for name, rec := range map[string]*timing.Record{"failed": failed, "slow": slow, "client-sampled": sampled} {
		if traces[rec.TraceID] != 2 { // the request and its attempt
			t.Errorf("%s request: %d spans exported under its trace %s, want 2", name, traces[rec.TraceID], rec.TraceID)
		}
	}
	if sampled.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the client's trace was not continued: %s", sampled.TraceID)
	}
}
