// Package metrics exports tidegate's Prometheus metrics: requests, errors
// by kind, verdicts, time to first token, inter-token latency, decode rate,
// the gateway's own overhead, tokens, cost, retries, hedges, breaker state
// and streams in flight. Label values come from the configuration (targets,
// endpoints), never from what a client sends, so cardinality stays bounded.
package metrics

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/load"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

// Metrics is safe for concurrent use.
type Metrics struct {
	registry *prometheus.Registry

	requests  *prometheus.CounterVec
	verdicts  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	overhead  prometheus.Histogram
	ttft      *prometheus.HistogramVec
	itl       *prometheus.HistogramVec
	decode    *prometheus.HistogramVec
	attempts  *prometheus.CounterVec
	retries   prometheus.Counter
	hedges    prometheus.Counter
	tokens    *prometheus.CounterVec
	cost      *prometheus.CounterVec
	endpoints map[string]bool
	targets   map[string]bool
	known     func(string) bool

	children sync.Map // target → *targetChildren: label lookups done once
}

type targetChildren struct {
	ttft, itl, decode prometheus.Observer
	ok, failed        prometheus.Counter
}

// Sources are the live figures read at scrape time.
type Sources struct {
	Health *router.Health
	// Targets lists every provider × credential × model in use; the
	// provider/model names bound the target labels.
	Targets         func() []router.Target
	StreamsInFlight func() int64
	// Outbox reports the bills waiting in the outbox for the database and
	// the age of the oldest.
	Outbox func() (waiting int, oldest time.Duration)
	// Known, when set, admits target names found at run time (targets of
	// providers that serve any model, bounded by their source).
	Known func(target string) bool
	// LiveQuality reports the ability routes' live quality (live.go).
	LiveQuality func() []ability.LiveReport
	// Pool reports the self-hosted targets' live load (pool.go); nil: none.
	Pool func() []load.Report
	// Batches reports the open batches' progress at a scrape; false: not now.
	Batches func() (BatchProgress, bool)
	// Tide reports the tidal gate's view of each target (tide.go); nil: none.
	Tide func() []TideTarget
}

// Endpoints are the API paths requests are labelled by; anything else is "other".
var Endpoints = []string{"/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/images/generations"}

// New registers every metric on a registry of its own (no globals).
func New(src Sources) *Metrics {
	r := prometheus.NewRegistry()
	ms := []float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}
	m := &Metrics{
		registry: r,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tidegate_requests_total",
			Help: "API requests by endpoint, answering target and HTTP status."}, []string{"endpoint", "target", "status"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tidegate_verdicts_total",
			Help: "API requests by verdict: ok, network, queue, prefill, decode, client, gateway, upstream_error."}, []string{"verdict"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tidegate_errors_total",
			Help: "Failed API requests by error kind."}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tidegate_request_duration_ms",
			Help: "Whole request time, arrival to last byte, in milliseconds.", Buckets: ms}, []string{"endpoint"}),
		overhead: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tidegate_gateway_overhead_ms",
			Help:    "The gateway's own time per request (auth, routing, relaying), in milliseconds.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100}}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tidegate_time_to_first_token_ms",
			Help: "Model time to first token per answering attempt, in milliseconds.", Buckets: ms}, []string{"target"}),
		itl: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tidegate_inter_token_latency_ms",
			Help:    "Mean time between a stream's chunks, per stream, in milliseconds.",
			Buckets: []float64{1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640}}, []string{"target"}),
		decode: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tidegate_decode_tokens_per_second",
			Help:    "Output tokens per second after the first, per stream.",
			Buckets: []float64{5, 10, 20, 40, 80, 160, 320, 640, 1280}}, []string{"target"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tidegate_attempts_total",
			Help: "Upstream attempts by target and outcome."}, []string{"target", "outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "tidegate_retries_total",
			Help: "Attempts after a request's first, one after another."}),
		hedges: prometheus.NewCounter(prometheus.CounterOpts{Name: "tidegate_hedges_total",
			Help: "Attempts raced alongside a running one."}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tidegate_tokens_total",
			Help: "Billed tokens by target and type (prompt, completion)."}, []string{"target", "type"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tidegate_cost_total",
			Help: "Billed cost by target, in the price's currency units (CNY, USD)."}, []string{"target", "currency"}),
		endpoints: map[string]bool{},
		targets:   map[string]bool{},
		known:     src.Known,
	}
	for _, e := range Endpoints {
		m.endpoints[e] = true
	}
	for _, t := range src.Targets() {
		m.targets[t.String()] = true
	}
	r.MustRegister(m.requests, m.verdicts, m.errors, m.duration, m.overhead, m.ttft, m.itl, m.decode,
		m.attempts, m.retries, m.hedges, m.tokens, m.cost,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.StreamsInFlight != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tidegate_streams_in_flight",
			Help: "Streams being relayed now."}, func() float64 { return float64(src.StreamsInFlight()) }))
	}
	if src.Outbox != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tidegate_outbox_pending_bills",
			Help: "Bills kept in the local outbox because the database has not taken them yet."},
			func() float64 { n, _ := src.Outbox(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tidegate_outbox_oldest_pending_seconds",
				Help: "Age of the oldest bill waiting in the outbox, in seconds; 0 when none waits."},
				func() float64 { _, d := src.Outbox(); return d.Seconds() }))
	}
	if src.Batches != nil {
		r.MustRegister(batchProgress{read: src.Batches})
	}
	if src.LiveQuality != nil {
		r.MustRegister(liveQuality{routes: src.LiveQuality})
	}
	if src.Pool != nil {
		r.MustRegister(pool{reports: src.Pool})
	}
	if src.Tide != nil {
		r.MustRegister(tide{reports: src.Tide})
	}
	if src.Health != nil {
		r.MustRegister(&breakers{health: src.Health, targets: src.Targets})
	}
	return m
}

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// label keeps a target label bounded: unknown names become "other".
func (m *Metrics) target(name string) string {
	if name == "" {
		return "none"
	}
	if m.targets[name] || m.known != nil && m.known(name) {
		return name
	}
	return "other"
}

func (m *Metrics) child(target string) *targetChildren {
	if c, ok := m.children.Load(target); ok {
		return c.(*targetChildren)
	}
	c := &targetChildren{
		ttft: m.ttft.WithLabelValues(target), itl: m.itl.WithLabelValues(target), decode: m.decode.WithLabelValues(target),
		ok: m.attempts.WithLabelValues(target, "ok"), failed: m.attempts.WithLabelValues(target, "failed"),
	}
	actual, _ := m.children.LoadOrStore(target, c)
	return actual.(*targetChildren)
}

// ObserveRequest counts a finished API request.
func (m *Metrics) ObserveRequest(_ context.Context, rec *timing.Record, _ http.Header) {
	endpoint := rec.Endpoint
	if !m.endpoints[endpoint] {
		endpoint = "other"
	}
	m.requests.WithLabelValues(endpoint, m.target(rec.Route), statusClass(rec.Status)).Inc()
	if rec.Verdict.Kind != "" {
		m.verdicts.WithLabelValues(rec.Verdict.Kind).Inc()
	}
	if rec.ErrorKind != "" {
		m.errors.WithLabelValues(rec.ErrorKind).Inc()
	}
	m.duration.WithLabelValues(endpoint).Observe(float64(rec.Phases.Total))
	m.overhead.Observe(float64(rec.Phases.Auth + rec.Phases.Route + rec.Phases.Gateway))
	for i := range rec.Attempts {
		a := &rec.Attempts[i]
		if i > 0 {
			if a.StartAt < rec.Attempts[i-1].EndAt {
				m.hedges.Inc()
			} else {
				m.retries.Inc()
			}
		}
		c := m.child(m.target(a.Target))
		if a.Error != "" {
			c.failed.Inc()
			continue
		}
		c.ok.Inc()
		if a.TTFT > 0 {
			c.ttft.Observe(float64(a.TTFT))
		}
		if a.Chunks > 1 && a.Decode > 0 {
			c.itl.Observe(float64(a.Decode) / float64(a.Chunks-1))
		}
		if a.TokensPerSecond > 0 {
			c.decode.Observe(a.TokensPerSecond)
		}
	}
}

// Billed counts the ledger's records: tokens and cost.
func (m *Metrics) Billed(records []ledger.Entry) {
	for _, r := range records {
		t := m.target(r.Provider + "/" + r.Model)
		m.tokens.WithLabelValues(t, "prompt").Add(float64(r.PromptTokens))
		m.tokens.WithLabelValues(t, "completion").Add(float64(r.CompletionTokens))
		if r.Priced && r.Cost > 0 {
			m.cost.WithLabelValues(t, r.Currency).Add(float64(r.Cost) / 1e6)
		}
	}
}

func statusClass(s int) string {
	switch {
	case s >= 500:
		return "5xx"
	case s >= 400:
		return "4xx"
	case s >= 200 && s < 300:
		return "2xx"
	}
	return "other"
}

// breakers reports each target's circuit state at scrape time:
// 0 healthy, 1 half-open, 2 ejected (or cooling down).
type breakers struct {
	health  *router.Health
	targets func() []router.Target
}

var breakerDesc = prometheus.NewDesc("tidegate_breaker_state",
	"Circuit state per target and credential: 0 healthy, 1 half-open, 2 ejected or cooling down.",
	[]string{"target", "credential"}, nil)

func (b *breakers) Describe(ch chan<- *prometheus.Desc) { ch <- breakerDesc }

func (b *breakers) Collect(ch chan<- prometheus.Metric) {
	for _, t := range b.targets() {
		state, _ := b.health.State(t)
		v := 0.0
		switch state {
		case "half-open":
			v = 1
		case "ejected":
			v = 2
		}
		ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, v, t.String(), t.Credential)
	}
}

// Serve runs a metrics-only listener (observe.metrics.listen) until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler) (string, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return ln.Addr().String(), nil
}
