// Package timing records where a request's time goes, phase by phase: the
// gateway's own work, each upstream attempt (DNS, connect, TLS, request
// written, first byte, first token, last token) and the wait on a slow
// client. It is a leaf package: the HTTP layer, the gateway and the provider
// clients all write into the one Request carried by the context.
package timing

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request is the timeline of one request. Offsets are from Received.
type Request struct {
	ID       string
	Received time.Time

	mu            sync.Mutex
	authenticated time.Duration
	routed        time.Duration
	clientEarly   time.Duration // client wait before routing ended
	attempts      []*Attempt
	model, keyID  string
	reason        string // the route policy's, when it gives one
	stream        bool
	trace         *Trace
	// Bodies, kept only when the request log stores them (capture).
	capture       bool
	input, output strings.Builder
	clientWait    atomic.Int64 // ns spent blocked writing to the client
	clientInside  atomic.Int64 // the part of it while an attempt was open (a stream)
	open          atomic.Int64 // attempts started and not ended
}

// New starts a timeline; capture keeps the request's and answer's bodies.
func New(id string, received time.Time, capture bool) *Request {
	return &Request{ID: id, Received: received, capture: capture}
}

// Trace is the W3C trace context a request continues: its trace, its own
// span, and whether the trace is sampled. Attempts get spans of their own,
// which upstreams see as the parent in a traceparent header.
type Trace struct {
	TraceID [16]byte
	SpanID  [8]byte
	Sampled bool
}

// SetTrace gives the request its trace context (when tracing is on).
func (r *Request) SetTrace(t Trace) {
	if r != nil {
		r.trace = &t
	}
}

// maxCapture bounds each captured body.
const maxCapture = 64 << 10

// Describe notes what was asked, once the body is read.
func (r *Request) Describe(model string, stream bool) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.model, r.stream = model, stream
	r.mu.Unlock()
}

// Capturing reports whether bodies are kept.
func (r *Request) Capturing() bool { return r != nil && r.capture }

// Input keeps the request body (when capturing).
func (r *Request) Input(b []byte) {
	if !r.Capturing() {
		return
	}
	r.mu.Lock()
	r.input.Reset()
	r.input.Write(b[:min(len(b), maxCapture)])
	r.mu.Unlock()
}

// Output appends answer text (when capturing): a whole answer, or a
// stream's deltas, joined so that a secret split across two deltas is still
// one string for the redaction.
func (r *Request) Output(text string) {
	if !r.Capturing() {
		return
	}
	r.mu.Lock()
	if room := maxCapture - r.output.Len(); room > 0 {
		r.output.WriteString(text[:min(len(text), room)])
	}
	r.mu.Unlock()
}

// Bodies returns the captured bodies.
func (r *Request) Bodies() (input, output string) {
	if !r.Capturing() {
		return "", ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.input.String(), r.output.String()
}

type ctxKey struct{}
type attemptKey struct{}

// With carries a timeline in a context.
func With(ctx context.Context, r *Request) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// From is the context's timeline; nil when none (every method is nil-safe).
func From(ctx context.Context) *Request {
	r, _ := ctx.Value(ctxKey{}).(*Request)
	return r
}

func (r *Request) since() time.Duration { return time.Since(r.Received) }

// Authenticated marks the end of authentication, by a key (empty: the
// master key).
func (r *Request) Authenticated(keyID string) {
	if r == nil {
		return
	}
	d := r.since()
	r.mu.Lock()
	r.authenticated, r.keyID = d, keyID
	r.mu.Unlock()
}

// Routed marks the end of routing (the plan is known, the budget held).
func (r *Request) Routed() {
	if r == nil {
		return
	}
	d := r.since()
	r.mu.Lock()
	r.routed = d
	r.mu.Unlock()
}

// Chose records why the route's policy ordered the plan as it did.
func (r *Request) Chose(reason string) {
	if r == nil || reason == "" {
		return
	}
	r.mu.Lock()
	r.reason = reason
	r.mu.Unlock()
}

// ClientWait adds time spent blocked writing to the client.
func (r *Request) ClientWait(d time.Duration) {
	if r == nil {
		return
	}
	r.clientWait.Add(int64(d))
	if r.open.Load() > 0 {
		r.clientInside.Add(int64(d))
	}
	r.mu.Lock()
	if r.routed == 0 {
		r.clientEarly += d // an upload, before routing ended
	}
	r.mu.Unlock()
}

// StartAttempt opens an attempt on a target; ctx then carries it to the
// provider's HTTP call (see Trace).
func (r *Request) StartAttempt(ctx context.Context, target string, inflight int) (context.Context, *Attempt) {
	if r == nil {
		return ctx, nil
	}
	a := &Attempt{req: r, Target: target, InFlight: inflight}
	if r.trace != nil {
		binary.LittleEndian.PutUint64(a.spanID[:], rand.Uint64()|1)
	}
	a.start.Store(int64(r.since()))
	r.open.Add(1)
	r.mu.Lock()
	a.Number = len(r.attempts) + 1
	r.attempts = append(r.attempts, a)
	r.mu.Unlock()
	return context.WithValue(ctx, attemptKey{}, a), a
}

// Attempt is one upstream call. Its marks are atomic: the HTTP transport
// calls the trace hooks from its own goroutines.
type Attempt struct {
	req      *Request
	Target   string
	Number   int
	InFlight int // calls this gateway had open on the target when it started

	start, end                 atomic.Int64 // offsets, ns
	dnsStart, dnsDone          atomic.Int64
	connectStart, connectDone  atomic.Int64
	tlsStart, tlsDone          atomic.Int64
	written, firstByte         atomic.Int64
	firstToken, lastToken      atomic.Int64
	processing                 atomic.Int64 // upstream-reported processing time, ns
	reused                     atomic.Bool
	outputTokens, promptTokens atomic.Int64
	chunks                     atomic.Int64
	errKind                    atomic.Value // string
	wire                       atomic.Bool  // the call went over HTTP
	spanID                     [8]byte      // set when the request is traced
	ended                      atomic.Bool
}

// Traceparent is the W3C header an upstream gets for this attempt, "" when
// the request is not traced.
func (a *Attempt) Traceparent() string {
	if a == nil || a.req.trace == nil {
		return ""
	}
	t := a.req.trace
	flags := "00"
	if t.Sampled {
		flags = "01"
	}
	return "00-" + hex.EncodeToString(t.TraceID[:]) + "-" + hex.EncodeToString(a.spanID[:]) + "-" + flags
}

// AttemptFrom is the attempt a context carries, nil when none.
func AttemptFrom(ctx context.Context) *Attempt {
	a, _ := ctx.Value(attemptKey{}).(*Attempt)
	return a
}

func (a *Attempt) mark(v *atomic.Int64) {
	if a == nil {
		return
	}
	v.Store(int64(a.req.since()))
}

// markOnce keeps the first mark (a retried dial must not move it).
func (a *Attempt) markOnce(v *atomic.Int64) {
	if a == nil {
		return
	}
	v.CompareAndSwap(0, int64(a.req.since()))
}

// Trace hooks an HTTP request's life into the attempt.
func (a *Attempt) Trace() *httptrace.ClientTrace {
	a.wire.Store(true)
	return &httptrace.ClientTrace{
		GotConn:              func(i httptrace.GotConnInfo) { a.reused.Store(i.Reused) },
		DNSStart:             func(httptrace.DNSStartInfo) { a.markOnce(&a.dnsStart) },
		DNSDone:              func(httptrace.DNSDoneInfo) { a.mark(&a.dnsDone) },
		ConnectStart:         func(string, string) { a.markOnce(&a.connectStart) },
		ConnectDone:          func(string, string, error) { a.mark(&a.connectDone) },
		TLSHandshakeStart:    func() { a.markOnce(&a.tlsStart) },
		TLSHandshakeDone:     func(tls.ConnectionState, error) { a.mark(&a.tlsDone) },
		WroteRequest:         func(httptrace.WroteRequestInfo) { a.mark(&a.written) },
		GotFirstResponseByte: func() { a.mark(&a.firstByte) },
	}
}

// Processing records the time the upstream says it spent (for example
// OpenAI's openai-processing-ms), which lets a slow network be told from a
// slow model on a non-streaming answer.
func (a *Attempt) Processing(d time.Duration) {
	if a != nil && d > 0 {
		a.processing.Store(int64(d))
	}
}

// Token marks a chunk carrying output: the first one is the first token.
func (a *Attempt) Token() {
	if a == nil {
		return
	}
	now := int64(a.req.since())
	a.firstToken.CompareAndSwap(0, now)
	a.lastToken.Store(now)
	a.chunks.Add(1)
}

// Output appends streamed answer text to the request's captured body.
func (a *Attempt) Output(text string) {
	if a != nil {
		a.req.Output(text)
	}
}

// Tokens records the attempt's token counts (from usage, or estimated).
func (a *Attempt) Tokens(prompt, output int) {
	if a == nil {
		return
	}
	a.promptTokens.Store(int64(prompt))
	a.outputTokens.Store(int64(output))
}

// End closes the attempt; errKind is empty on success.
func (a *Attempt) End(errKind string) {
	if a == nil {
		return
	}
	if !a.ended.CompareAndSwap(false, true) {
		return
	}
	a.errKind.Store(errKind)
	a.mark(&a.end)
	a.req.open.Add(-1)
}
