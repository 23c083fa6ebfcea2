package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/metrics"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
	"github.com/tidegate/tidegate/internal/tracing"
	"github.com/tidegate/tidegate/internal/verdict"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// BenchmarkRelay measures the relay path on loopback: the same call straight
// to an upstream and through tidegate, in one run. Compare the pairs as a
// ratio; absolute figures depend on the machine.
func BenchmarkRelay(b *testing.B) {
	upstream, _ := simServer(&testing.T{}, sim.Model{Name: "m", OutputTokens: 16})
	defer upstream.Close()
	srv := newServer(&testing.T{}, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, nil)
	defer srv.Close()
	// The same, judged, with Prometheus metrics and tracing at its default
	// (failed and slow requests, and 10% of healthy ones) to an OTLP sink on
	// loopback: their cost is the ratio of the pairs.
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()
	tracer, err := tracing.New(context.Background(), tracing.Options{Endpoint: collector.URL, SampleRatio: 0.1, ServiceName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer tracer.Shutdown(context.Background())
	observed := newServer(&testing.T{}, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, func(s *httpapi.Server) {
		m := metrics.New(metrics.Sources{Targets: func() []router.Target { return []router.Target{{Provider: "up", Model: "m"}} }, StreamsInFlight: s.StreamsInFlight})
		s.Judge, s.Metrics = verdict.New(), m.Handler()
		s.Observers, s.Traces = []httpapi.RequestObserver{m, tracer}, tracer
	})
	defer observed.Close()
	// The same with the whole reliability layer on: health and ejection,
	// the retry budget, concurrency slots per target and per route, the
	// first-token and idle watchdogs, time-to-first-token learning.
	reliable := newServer(&testing.T{}, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, func(s *httpapi.Server) {
		g := s.Gateway
		g.Health = router.NewHealth(router.HealthConfig{}, nil, nil)
		g.Retries = &gateway.RetryBudget{}
		g.Router = router.New(router.Config{Providers: []router.Provider{{Name: "up", Targets: map[string]router.TargetSpec{"m": {MaxConcurrency: 10_000}}}},
			Routes: []router.Route{{Name: "up/m", Targets: []router.Target{{Provider: "up", Model: "m"}}, MaxConcurrency: 10_000}}})
		g.FirstTokenTimeout, g.IdleTimeout = 30*time.Second, 60*time.Second
	})
	defer reliable.Close()
	defer closeUpstreamClients()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	body := func(model string, stream bool) []byte {
		if stream {
			return []byte(`{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"Tell me about the tide gate."}]}`)
		}
		return []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Tell me about the tide gate."}]}`)
	}
	run := func(b *testing.B, url string, payload []byte, stream bool) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(payload))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || (stream && !strings.Contains(string(got), "[DONE]")) {
					b.Errorf("status %d: %.200s", resp.StatusCode, got)
					return
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, upstream.URL, body("m", false), false) })
	b.Run("tidegate", func(b *testing.B) { run(b, srv.URL, body("up/m", false), false) })
	b.Run("tidegate-observed", func(b *testing.B) { run(b, observed.URL, body("up/m", false), false) })
	b.Run("tidegate-reliable", func(b *testing.B) { run(b, reliable.URL, body("up/m", false), false) })
	b.Run("direct-stream", func(b *testing.B) { run(b, upstream.URL, body("m", true), true) })
	b.Run("tidegate-stream", func(b *testing.B) { run(b, srv.URL, body("up/m", true), true) })
	b.Run("tidegate-observed-stream", func(b *testing.B) { run(b, observed.URL, body("up/m", true), true) })
	b.Run("tidegate-reliable-stream", func(b *testing.B) { run(b, reliable.URL, body("up/m", true), true) })
}

// BenchmarkObserve measures what each finished request costs the judge,
// the metrics and the tracer (to an OTLP sink on loopback), alone, on a
// streamed request's record as the HTTP layer builds it.
func BenchmarkObserve(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()
	tracer, err := tracing.New(context.Background(), tracing.Options{Endpoint: collector.URL, SampleRatio: 1, ServiceName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer tracer.Shutdown(context.Background())
	m := metrics.New(metrics.Sources{Targets: func() []router.Target { return []router.Target{{Provider: "up", Model: "m"}} }})
	judge := verdict.New()
	h := http.Header{}
	rt := timing.New("req-1", time.Now(), false)
	rt.SetTrace(tracer.StartTrace(h)) // sampled: the ratio is 1
	rt.Authenticated("")
	rt.Describe("chat", true)
	rt.Routed()
	_, a := rt.StartAttempt(context.Background(), "up/m", 1)
	for range 16 {
		a.Token()
	}
	a.Tokens(12, 16)
	a.End("")
	rec := rt.Finish(timing.Meta{Endpoint: "/v1/chat/completions", Route: "up/m", Status: 200}, time.Millisecond)
	unsampled := rec
	unsampled.TraceSampled = false
	ctx := context.Background()
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"judge", func() { judge.Judge(&rec) }},
		{"metrics", func() { m.ObserveRequest(ctx, &rec, h) }},
		{"tracing-start", func() { _ = tracer.StartTrace(h) }},
		{"tracing-sampled", func() { tracer.ObserveRequest(ctx, &rec, h) }},
		{"tracing-unsampled", func() { tracer.ObserveRequest(ctx, &unsampled, h) }},
		{"server-timing", func() { _ = rec.ServerTiming() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.fn()
			}
		})
	}
}
