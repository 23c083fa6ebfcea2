package timing

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Ms is a duration in milliseconds, as records and headers show it.
type Ms float64

func ms(d time.Duration) Ms { return Ms(float64(d) / float64(time.Millisecond)) }

// Phases split a request's total time into parts that do not overlap, so
// they add up to Total: the gateway's own work (Auth, Route, Gateway), the
// upstream's (Upstream, every attempt, overlaps counted once) and the
// client's (Client, time blocked writing to a slow reader).
type Phases struct {
	Auth     Ms `json:"auth_ms"`
	Route    Ms `json:"route_ms"`
	Upstream Ms `json:"upstream_ms"`
	Client   Ms `json:"client_ms"`
	Gateway  Ms `json:"gateway_ms"`
	Total    Ms `json:"total_ms"`
}

// AttemptRecord is one upstream call. Offsets (At) are from the request's
// arrival; the rest are durations.
type AttemptRecord struct {
	Number       int    `json:"number"`
	Target       string `json:"target"`
	Error        string `json:"error,omitempty"` // the error kind; empty on success
	InFlight     int    `json:"in_flight"`
	Reused       bool   `json:"reused_connection"`
	Wire         bool   `json:"wire"` // over HTTP (false: in-process, like the sim)
	StartAt      Ms     `json:"start_at_ms"`
	EndAt        Ms     `json:"end_at_ms"`
	DNS          Ms     `json:"dns_ms"`
	Connect      Ms     `json:"connect_ms"`
	TLS          Ms     `json:"tls_ms"`
	WrittenAt    Ms     `json:"written_at_ms,omitempty"`
	FirstByteAt  Ms     `json:"first_byte_at_ms,omitempty"`
	FirstTokenAt Ms     `json:"first_token_at_ms,omitempty"`
	LastTokenAt  Ms     `json:"last_token_at_ms,omitempty"`
	// HeadWait is the wait for the response head once the request was
	// written. Many upstreams hold their head until the first token, so
	// it holds the network's round trip and any upstream work.
	HeadWait Ms `json:"head_wait_ms,omitempty"`
	// RoundTrip is the network's share of HeadWait, and RoundTripFrom the
	// evidence behind it (RoundTripProcessing, RoundTripConnect,
	// RoundTripBaseline); none: unknown, counted as the upstream's.
	RoundTrip     Ms     `json:"round_trip_ms,omitempty"`
	RoundTripFrom string `json:"round_trip_from,omitempty"`
	// Network is connection set-up plus RoundTrip: the wait the upstream
	// did not spend working.
	Network Ms `json:"network_ms"`
	// TTFT is the upstream's time to its first token: the wait for it less
	// Network (streams).
	TTFT       Ms `json:"ttft_ms"`
	Processing Ms `json:"upstream_processing_ms,omitempty"`
	// Model is a whole (non-streamed) answer's model time: what the
	// upstream says it worked, else HeadWait less RoundTrip (in process:
	// the whole call).
	Model Ms `json:"model_ms,omitempty"`
	// Transfer is a whole answer's body, from its first byte to the
	// attempt's end (read and decoded).
	Transfer        Ms      `json:"transfer_ms,omitempty"`
	Decode          Ms      `json:"decode_ms"`
	PromptTokens    int     `json:"prompt_tokens"`
	OutputTokens    int     `json:"output_tokens"`
	Chunks          int     `json:"chunks"`
	TokensPerSecond float64 `json:"tokens_per_second"`
	SpanID          string  `json:"span_id,omitempty"` // the span upstreams saw as their parent
}

// Record is a finished request's timeline.
type Record struct {
	ID        string    `json:"id"`
	Received  time.Time `json:"received"`
	Endpoint  string    `json:"endpoint"`
	Model     string    `json:"model,omitempty"`
	Stream    bool      `json:"stream"`
	Status    int       `json:"status"`
	ErrorKind string    `json:"error_kind,omitempty"`
	Route     string    `json:"route,omitempty"`
	// RouteReason is why the route's policy chose its order (ability routes).
	RouteReason string          `json:"route_reason,omitempty"`
	KeyID       string          `json:"key_id,omitempty"`
	Phases      Phases          `json:"phases"`
	Attempts    []AttemptRecord `json:"attempts"`
	Verdict     Verdict         `json:"verdict"`
	// The W3C trace the request belongs to (when tracing is on), and its span.
	TraceID      string `json:"trace_id,omitempty"`
	SpanID       string `json:"span_id,omitempty"`
	TraceSampled bool   `json:"trace_sampled,omitempty"`
	// Bodies, only when the request log keeps them; redacted before storing.
	RequestBody  string `json:"request_body,omitempty"`
	ResponseBody string `json:"response_body,omitempty"`
}

// Verdict names the layer that made a request slow or failed, with the
// numbers behind the call.
type Verdict struct {
	Kind    string             `json:"kind"` // ok | network | queue | prefill | decode | client | gateway | upstream_error | refused
	Reason  string             `json:"reason"`
	Numbers map[string]float64 `json:"numbers,omitempty"`
}

// Verdict kinds.
const (
	VerdictOK            = "ok"
	VerdictNetwork       = "network"
	VerdictQueue         = "queue"
	VerdictPrefill       = "prefill"
	VerdictDecode        = "decode"
	VerdictClient        = "client"
	VerdictGateway       = "gateway"
	VerdictUpstreamError = "upstream_error"
	VerdictRefused       = "refused" // an error answer before any upstream call
)

func at(v int64) Ms { return ms(time.Duration(v)) }

func span(from, to int64) Ms {
	if from == 0 || to < from {
		return 0
	}
	return at(to - from)
}

// Snapshot reads the attempt's marks so far.
func (a *Attempt) Snapshot() AttemptRecord {
	r := AttemptRecord{
		Number: a.Number, Target: a.Target, InFlight: a.InFlight, Reused: a.reused.Load(), Wire: a.wire.Load(),
		StartAt: at(a.start.Load()), EndAt: at(a.end.Load()),
		DNS:       span(a.dnsStart.Load(), a.dnsDone.Load()),
		Connect:   span(a.connectStart.Load(), a.connectDone.Load()),
		TLS:       span(a.tlsStart.Load(), a.tlsDone.Load()),
		WrittenAt: at(a.written.Load()), FirstByteAt: at(a.firstByte.Load()),
		FirstTokenAt: at(a.firstToken.Load()), LastTokenAt: at(a.lastToken.Load()),
		Processing:   at(a.processing.Load()),
		PromptTokens: int(a.promptTokens.Load()), OutputTokens: int(a.outputTokens.Load()), Chunks: int(a.chunks.Load()),
	}
	if k, ok := a.errKind.Load().(string); ok {
		r.Error = k
	}
	if a.req.trace != nil {
		r.SpanID = hex.EncodeToString(a.spanID[:])
	}
	if r.FirstTokenAt > 0 {
		r.Decode = r.LastTokenAt - r.FirstTokenAt
	}
	if r.Wire && r.FirstByteAt > 0 {
		r.HeadWait = max(0, r.FirstByteAt-r.WrittenAt)
		switch {
		case r.Processing > 0:
			r.RoundTrip, r.RoundTripFrom = max(0, r.HeadWait-r.Processing), RoundTripProcessing
		case !r.Reused && r.Connect > 0:
			// A TCP handshake is one round trip.
			r.RoundTrip, r.RoundTripFrom = min(r.HeadWait, r.Connect), RoundTripConnect
		}
		if r.FirstTokenAt == 0 && r.Error == "" {
			r.Transfer = max(0, r.EndAt-r.FirstByteAt)
		}
	}
	r.SplitHead(r.RoundTrip, r.RoundTripFrom)
	if r.Decode > 0 && r.OutputTokens > 1 {
		r.TokensPerSecond = float64(r.OutputTokens-1) / (float64(r.Decode) / 1000)
	}
	return r
}

// Where an attempt's round trip comes from.
const (
	RoundTripProcessing = "processing" // the head wait less the upstream's reported processing time
	RoundTripConnect    = "connect"    // the attempt's own TCP handshake
	RoundTripBaseline   = "baseline"   // the target's usual round trip (the attempt measured none)
)

// SplitHead sets the network's share of the wait for the head to roundTrip
// (from the given evidence) and derives Network, TTFT and Model from it:
// the rest of the wait is the upstream's (queue or prefill), not the
// network's.
func (r *AttemptRecord) SplitHead(roundTrip Ms, from string) {
	roundTrip = max(0, min(roundTrip, r.HeadWait))
	r.RoundTrip, r.RoundTripFrom = roundTrip, from
	if from == "" {
		r.RoundTrip = 0
	}
	setup := r.DNS + r.Connect + r.TLS
	r.Network, r.TTFT, r.Model = 0, 0, 0
	switch {
	case r.FirstTokenAt > 0 && r.FirstByteAt > 0: // a stream over HTTP
		r.Network = setup + r.RoundTrip
		r.TTFT = max(0, r.FirstTokenAt-r.WrittenAt-r.RoundTrip)
	case r.FirstTokenAt > 0: // an in-process stream
		r.TTFT = r.FirstTokenAt - r.StartAt
	case r.FirstByteAt > 0: // a whole answer over HTTP
		r.Network = setup + r.RoundTrip
	}
	if r.FirstTokenAt == 0 && r.Error == "" {
		switch {
		case r.Processing > 0:
			r.Model = r.Processing
		case r.FirstByteAt > 0:
			r.Model = r.HeadWait - r.RoundTrip
		case !r.Wire && r.EndAt > r.StartAt:
			r.Model = r.EndAt - r.StartAt
		}
	}
}

// Meta is what the HTTP layer knows of a finished request.
type Meta struct {
	Endpoint, Route, ErrorKind string
	Status                     int
}

// Finish builds the record at the end of the response (finished is its
// offset from Received); the verdict is left for the judge.
func (r *Request) Finish(m Meta, finished time.Duration) Record {
	r.mu.Lock()
	model, stream, keyID, reason := r.model, r.stream, r.keyID, r.reason
	r.mu.Unlock()
	rec := Record{ID: r.ID, Received: r.Received, Endpoint: m.Endpoint, Model: model, Stream: stream,
		Status: m.Status, ErrorKind: m.ErrorKind, Route: m.Route, RouteReason: reason, KeyID: keyID}
	rec.Phases = r.phases(finished, &rec.Attempts)
	rec.RequestBody, rec.ResponseBody = r.Bodies()
	if t := r.trace; t != nil {
		rec.TraceID, rec.SpanID, rec.TraceSampled = hex.EncodeToString(t.TraceID[:]), hex.EncodeToString(t.SpanID[:]), t.Sampled
	}
	return rec
}

// phases partitions [0, until] and snapshots the attempts.
func (r *Request) phases(until time.Duration, attempts *[]AttemptRecord) Phases {
	r.mu.Lock()
	auth, routed, early := r.authenticated, r.routed, r.clientEarly
	as := append([]*Attempt(nil), r.attempts...)
	r.mu.Unlock()
	var p Phases
	p.Total = ms(until)
	p.Auth = ms(auth)
	if routed > auth && auth > 0 {
		p.Route = ms(max(0, routed-auth-early))
	}
	// The union of the attempts' intervals, clipped to until: hedged
	// attempts overlap and must be counted once.
	type iv struct{ from, to time.Duration }
	var ivs []iv
	for _, a := range as {
		s := time.Duration(a.start.Load())
		e := time.Duration(a.end.Load())
		if e == 0 || e > until {
			e = until
		}
		if e > s {
			ivs = append(ivs, iv{s, e})
		}
		if attempts != nil {
			*attempts = append(*attempts, a.Snapshot())
		}
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].from < ivs[j].from })
	var upstream, curFrom, curTo time.Duration
	for i, v := range ivs {
		if i == 0 || v.from > curTo {
			upstream += curTo - curFrom
			curFrom, curTo = v.from, v.to
		} else if v.to > curTo {
			curTo = v.to
		}
	}
	upstream += curTo - curFrom
	client := time.Duration(r.clientWait.Load())
	// A stream writes to its client while its attempt is open: that wait
	// is the client's, not the upstream's.
	upstream -= min(time.Duration(r.clientInside.Load()), upstream)
	p.Upstream, p.Client = ms(upstream), ms(client)
	p.Gateway = p.Total - p.Auth - p.Route - p.Upstream - p.Client
	return p
}

// ServerTiming renders the phases so far as a Server-Timing header value
// (https://www.w3.org/TR/server-timing/): the partition of total, then the
// answering attempt's details, prefixed "up-".
func (r *Request) ServerTiming(now time.Duration) string {
	var attempts []AttemptRecord
	p := r.phases(now, &attempts)
	return serverTiming(p, attempts)
}

// ServerTiming renders the finished request's phases (a stream's trailer).
func (rec *Record) ServerTiming() string { return serverTiming(rec.Phases, rec.Attempts) }

func serverTiming(p Phases, attempts []AttemptRecord) string {
	var b strings.Builder
	entry := func(name string, v Ms) {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name)
		b.WriteString(";dur=")
		b.WriteString(strconv.FormatFloat(float64(v), 'f', 3, 64))
	}
	entry("auth", p.Auth)
	entry("route", p.Route)
	entry("upstream", p.Upstream)
	entry("client", p.Client)
	entry("gateway", p.Gateway)
	entry("total", p.Total)
	if n := len(attempts); n > 0 {
		a := attempts[n-1]
		if a.Wire {
			entry("up-network", a.Network)
		}
		if a.TTFT > 0 {
			entry("up-ttft", a.TTFT)
		}
		if a.Decode > 0 {
			entry("up-decode", a.Decode)
		}
		if n > 1 {
			fmt.Fprintf(&b, ", attempts;desc=%d", n)
		}
	}
	return b.String()
}
