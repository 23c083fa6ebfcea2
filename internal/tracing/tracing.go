// Package tracing exports each API request as OpenTelemetry spans over
// OTLP/HTTP, named and attributed by the GenAI semantic conventions: a
// server span for the request, a client span per upstream attempt with its
// first token as an event. Spans are built from the finished request's
// timeline, so the request path pays nothing while it runs; a client's
// traceparent makes the request a child of the client's trace. No body, no
// header, no message text ever becomes an attribute.
//
// Each request's trace and span ids are chosen when it arrives (StartTrace),
// so upstreams get a traceparent naming the attempt's span, and self-hosted
// servers that trace (vLLM, SGLang, TGI) join the same trace; the spans are
// later built with those ids.
//
// Sampling is decided at the head — the client's sampled flag, else a
// SampleRatio share of requests — and widened at the tail, since the verdict
// is known when the spans are built: every request that failed or was judged
// slow is exported too.
package tracing

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tidegate/tidegate/internal/timing"
)

// Options configure the exporter.
type Options struct {
	Endpoint    string  // OTLP/HTTP base URL, e.g. http://127.0.0.1:4318
	SampleRatio float64 // share of healthy requests traced; failed and slow ones always are
	ServiceName string
	Version     string
}

// Tracer turns request records into spans.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
	ratio    float64
}

// New starts an exporter (batched, in the background).
func New(ctx context.Context, o Options) (*Tracer, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimRight(o.Endpoint, "/")+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", o.ServiceName), attribute.String("service.version", o.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), // the decision is ObserveRequest's
		sdktrace.WithIDGenerator(presetIDs{}),
	)
	return &Tracer{provider: tp, tracer: tp.Tracer("github.com/tidegate/tidegate"), ratio: o.SampleRatio}, nil
}

// Shutdown flushes the spans still queued.
func (t *Tracer) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

func at(rec *timing.Record, ms timing.Ms) time.Time {
	return rec.Received.Add(time.Duration(float64(ms) * float64(time.Millisecond)))
}

// operation names the GenAI operation of an endpoint.
func operation(endpoint string) string {
	switch endpoint {
	case "/v1/embeddings":
		return "embeddings"
	case "/v1/images/generations":
		return "generate_content"
	}
	return "chat"
}

// StartTrace continues the client's trace, or starts one, for a request
// arriving now.
func (t *Tracer) StartTrace(h http.Header) timing.Trace {
	var tr timing.Trace
	sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), propagation.HeaderCarrier(h)))
	if sc.IsValid() {
		tr.TraceID, tr.Sampled = sc.TraceID(), sc.IsSampled()
	} else {
		tr.TraceID, tr.Sampled = randomTraceID(), rand.Float64() < t.ratio
	}
	tr.SpanID = randomSpanID()
	return tr
}

// presetIDs lets spans built after the fact keep the ids chosen on arrival
// (carried in the context); anything else gets random ids.
type presetIDs struct{}

type idKey struct{}

type presetID struct {
	trace trace.TraceID
	span  trace.SpanID
}

func (presetIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if p, ok := ctx.Value(idKey{}).(presetID); ok && p.trace.IsValid() {
		return p.trace, p.span
	}
	return randomTraceID(), randomSpanID()
}

func (presetIDs) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if p, ok := ctx.Value(idKey{}).(presetID); ok && p.span.IsValid() {
		return p.span
	}
	return randomSpanID()
}

func randomTraceID() trace.TraceID {
	var id trace.TraceID
	binary.LittleEndian.PutUint64(id[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(id[8:], rand.Uint64()|1)
	return id
}

func randomSpanID() trace.SpanID {
	var id trace.SpanID
	binary.LittleEndian.PutUint64(id[:], rand.Uint64()|1)
	return id
}

func withIDs(ctx context.Context, traceID, spanID string) context.Context {
	var p presetID
	if b, err := hex.DecodeString(traceID); err == nil && len(b) == len(p.trace) {
		copy(p.trace[:], b)
	}
	if b, err := hex.DecodeString(spanID); err == nil && len(b) == len(p.span) {
		copy(p.span[:], b)
	}
	return context.WithValue(ctx, idKey{}, p)
}

// ObserveRequest exports a finished request: when its trace was sampled on
// arrival, or when it failed or was slow.
func (t *Tracer) ObserveRequest(_ context.Context, rec *timing.Record, h http.Header) {
	healthy := rec.Status < 400 && (rec.Verdict.Kind == "" || rec.Verdict.Kind == timing.VerdictOK)
	if rec.TraceID == "" || (healthy && !rec.TraceSampled) {
		return
	}
	parent := withIDs(t.prop.Extract(context.Background(), propagation.HeaderCarrier(h)), rec.TraceID, rec.SpanID)
	op := operation(rec.Endpoint)
	attrs := []attribute.KeyValue{
		attribute.String("gen_ai.operation.name", op),
		attribute.String("gen_ai.request.model", rec.Model),
		attribute.String("http.route", rec.Endpoint),
		attribute.Int("http.response.status_code", rec.Status),
		attribute.String("tidegate.request_id", rec.ID),
		attribute.String("tidegate.verdict", rec.Verdict.Kind),
		attribute.Bool("tidegate.stream", rec.Stream),
		attribute.Float64("tidegate.gateway_ms", float64(rec.Phases.Auth+rec.Phases.Route+rec.Phases.Gateway)),
		attribute.Float64("tidegate.client_wait_ms", float64(rec.Phases.Client)),
	}
	if rec.Route != "" {
		attrs = append(attrs, attribute.String("tidegate.route", rec.Route))
	}
	ctx, span := t.tracer.Start(parent, op+" "+rec.Model, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(rec.Received), trace.WithAttributes(attrs...))
	for i := range rec.Attempts {
		a := &rec.Attempts[i]
		provider, model, _ := strings.Cut(a.Target, "/")
		aattrs := []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", op),
			attribute.String("gen_ai.provider.name", provider),
			attribute.String("gen_ai.request.model", model),
			attribute.Int("tidegate.attempt", a.Number),
			attribute.Float64("tidegate.network_ms", float64(a.Network)),
		}
		if a.Error == "" {
			aattrs = append(aattrs, attribute.String("gen_ai.response.model", model))
			if a.PromptTokens > 0 || a.OutputTokens > 0 {
				aattrs = append(aattrs, attribute.Int("gen_ai.usage.input_tokens", a.PromptTokens),
					attribute.Int("gen_ai.usage.output_tokens", a.OutputTokens))
			}
			if a.TokensPerSecond > 0 {
				aattrs = append(aattrs, attribute.Float64("tidegate.decode_tokens_per_second", a.TokensPerSecond))
			}
		} else {
			aattrs = append(aattrs, attribute.String("error.type", a.Error))
		}
		_, as := t.tracer.Start(withIDs(ctx, rec.TraceID, a.SpanID), op+" "+model, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithTimestamp(at(rec, a.StartAt)), trace.WithAttributes(aattrs...))
		if a.FirstByteAt > 0 {
			as.AddEvent("first_byte", trace.WithTimestamp(at(rec, a.FirstByteAt)))
		}
		if a.FirstTokenAt > 0 {
			as.AddEvent("gen_ai.first_token", trace.WithTimestamp(at(rec, a.FirstTokenAt)))
		}
		if a.Error != "" {
			as.SetStatus(codes.Error, a.Error)
		}
		end := a.EndAt
		if end == 0 {
			end = rec.Phases.Total
		}
		as.End(trace.WithTimestamp(at(rec, end)))
	}
	if rec.Status >= 500 || rec.ErrorKind != "" && rec.Status >= 400 {
		span.SetAttributes(attribute.String("error.type", rec.ErrorKind))
		if rec.Status >= 500 {
			span.SetStatus(codes.Error, rec.ErrorKind)
		}
	}
	span.End(trace.WithTimestamp(at(rec, rec.Phases.Total)))
}
