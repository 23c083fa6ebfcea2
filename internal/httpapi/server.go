// Package httpapi serves tidegate's HTTP API: the OpenAI-compatible /v1
// routes, Anthropic's /v1/messages, and health. Handlers decode, validate,
// call the gateway and encode; they hold no business logic.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/tidegate/tidegate/internal/ability"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/secrets"
	"github.com/tidegate/tidegate/internal/timing"
	"github.com/tidegate/tidegate/internal/verdict"
)

// Log attribute keys.
const (
	attrRequestID = "request_id"
	attrMethod    = "method"
	attrPath      = "path"
	attrStatus    = "status"
	attrRoute     = "route"
	attrAttempts  = "attempts"
	attrDuration  = "duration_ms"
	attrVerdict   = "verdict"
	attrKind      = "error_kind"
)

// Response headers of the public contract.
const (
	HeaderRequestID = "x-request-id"
	// HeaderOwnRequestID is tidegate's own id of the request (128 random
	// bits): the key of its ledger records and request log entry.
	HeaderOwnRequestID = "x-tidegate-request-id"
	HeaderRoute        = "x-tidegate-route"
	HeaderAttempts     = "x-tidegate-attempts"
)

// Server holds the handlers' dependencies and limits.
type Server struct {
	Gateway *gateway.Gateway
	Logger  *slog.Logger
	// MasterKey authorises every call; compared, as its hash, in constant time.
	MasterKey string
	// MasterKeyHash is the SHA-256 of a master key kept only as its hash
	// (a generated one); used when MasterKey is empty.
	MasterKeyHash []byte
	// AdminSeparate keeps /admin/* and /metrics off Handler: AdminHandler
	// serves them, on a listener of their own.
	AdminSeparate bool
	// AuthFailureLimit is how many failed authentications a client address
	// may make in a minute; past it, it is answered 429 until the minute
	// ends, whatever key it presents. 0: no limit.
	AuthFailureLimit int
	// BodyLimit bounds a request body in bytes.
	BodyLimit int64
	// BodyReadTimeout bounds reading a request body, from the arrival of
	// its head, on every route.
	BodyReadTimeout time.Duration
	// BodyMemory caps the memory request bodies hold at once, all requests
	// together (past it: 503): BodyCopies times a body's size while it is
	// read, decoded and sent, its size alone once the answer starts. 0: no cap.
	BodyMemory int64
	// WriteTimeout bounds each write to a client, so a reader that stopped
	// reading cannot hold a stream (and its upstream) forever.
	WriteTimeout time.Duration
	// Feedback, when set, is told each verdict recorded (live quality).
	Feedback func(ability.Feedback)
	// EvalRuns starts eval runs (POST /admin/evals/{name}/runs); nil: off.
	EvalRuns EvalRunner
	// Prices keeps the admin API's prices (/admin/prices); nil: off.
	Prices PriceBook
	// Store holds virtual keys and serves the admin API; nil: master key only.
	Store Store
	// Sealer encrypts provider credentials; nil: the credentials API is off.
	Sealer *secrets.Sealer
	// Now is the clock for key expiry.
	Now func() time.Time
	// RequestTimeout bounds a request, all attempts together; a client may
	// shorten it with x-tidegate-timeout. 0: no bound.
	RequestTimeout time.Duration

	// Judge gives every API request a verdict; nil: none.
	Judge *verdict.Judge
	// Observers receive every finished API request's record.
	Observers []RequestObserver
	// Requests finds a past request's record (GET /admin/requests/{id}).
	Requests RequestFinder
	// Status reports the targets' live state (GET /admin/status).
	Status StatusSource
	// CaptureBodies keeps request and answer bodies in the records.
	CaptureBodies bool
	// Traces, when set, gives each request a trace context that upstreams
	// receive as traceparent.
	Traces TraceStarter
	// CredentialsChanged, when set, is called after a credential is added or
	// deleted through the admin API, to put the change to use at once.
	CredentialsChanged func(ctx context.Context) error
	// StoredCredentialProviders names the providers that take stored
	// credentials; POST /admin/credentials refuses any other.
	StoredCredentialProviders []string
	// Metrics, when set, is served at GET /metrics behind the master key.
	Metrics http.Handler
	// Ready answers GET /readyz (ready.go); nil: always ready.
	Ready *Readiness
	// Console, when set, is the web console, served at /console/ on the
	// main listener and on the admin listener.
	Console http.Handler
	// Batch serves /v1/files and /v1/batches; nil: they answer 404.
	Batch *BatchAPI

	streams atomic.Int64 // streams being relayed
	bodies  bodyMemory   // request body bytes held

	setup      sync.Once
	masterHash [sha256.Size]byte
	hasMaster  bool
	throttle   *authThrottle
	keyCache   *keys.Cache
}

// init readies what every handler shares, once.
func (s *Server) init() {
	s.setup.Do(func() {
		switch {
		case s.MasterKey != "":
			s.masterHash, s.hasMaster = sha256.Sum256([]byte(s.MasterKey)), true
		case len(s.MasterKeyHash) == sha256.Size:
			copy(s.masterHash[:], s.MasterKeyHash)
			s.hasMaster = true
		}
		s.bodies.limit = s.BodyMemory
		s.throttle = newAuthThrottle(s.AuthFailureLimit, time.Minute)
		if s.Store != nil {
			s.keyCache = keys.NewCache(s.Store)
		}
	})
}

// Handler builds the public routes, with the admin surface unless
// AdminSeparate.
func (s *Server) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.auth(s.chatCompletions))
	mux.HandleFunc("POST /v1/messages", s.auth(s.messages))
	mux.HandleFunc("POST /v1/responses", s.auth(s.createResponse))
	mux.HandleFunc("GET /v1/responses/{id}", s.auth(s.getResponse))
	mux.HandleFunc("DELETE /v1/responses/{id}", s.auth(s.deleteResponse))
	mux.HandleFunc("POST /v1/messages/count_tokens", s.auth(s.countTokens))
	mux.HandleFunc("/v1/messages/", s.unknownMessagesRoute)
	mux.HandleFunc("POST /v1/embeddings", s.auth(s.embeddings))
	mux.HandleFunc("POST /v1/images/generations", s.auth(s.images))
	mux.HandleFunc("POST /v1/images/edits", s.auth(s.imageEdits))
	mux.HandleFunc("POST /v1/completions", s.auth(s.completions))
	mux.HandleFunc("POST /v1/moderations", s.auth(s.moderations))
	mux.HandleFunc("POST /v1/audio/transcriptions", s.auth(s.transcriptions))
	mux.HandleFunc("POST /v1/audio/translations", s.auth(s.translations))
	mux.HandleFunc("POST /v1/audio/speech", s.auth(s.speech))
	mux.HandleFunc("POST /v1/feedback", s.auth(s.feedback))
	mux.HandleFunc("GET /v1/models", s.auth(s.listModels))
	mux.HandleFunc("GET /v1/models/{id...}", s.auth(s.getModel))
	s.batchRoutes(mux)
	if !s.AdminSeparate {
		s.adminSurface(mux)
	}
	s.consoleRoutes(mux)
	return s.common(mux)
}

// AdminHandler serves the admin surface alone: /admin/*, /metrics, health.
func (s *Server) AdminHandler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	s.adminSurface(mux)
	s.consoleRoutes(mux)
	return s.common(mux)
}

func (s *Server) consoleRoutes(mux *http.ServeMux) {
	if s.Console == nil {
		return
	}
	mux.Handle("/console/", s.Console)
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
}

func (s *Server) adminSurface(mux *http.ServeMux) {
	s.adminRoutes(mux)
	mux.HandleFunc("PATCH /admin/keys/{id}", s.adminOnly(s.patchKey))
	mux.HandleFunc("GET /admin/budgets", s.adminOnly(s.budgets))
	if s.Metrics != nil {
		mux.HandleFunc("GET /metrics", s.adminOnly(s.Metrics.ServeHTTP))
	}
}

// common adds health and the unknown-route answer, and wraps the middleware.
func (s *Server) common(mux *http.ServeMux) http.Handler {
	// Liveness: the process serves. Nothing it depends on is checked
	// here (that is /readyz), so an outage elsewhere restarts nothing.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "unknown_route",
			Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return s.middleware(mux)
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
)

// principal is who a request authenticated as: the master key, or a virtual key.
type principal struct {
	master bool
	key    *keys.Key
}

func principalFrom(r *http.Request) principal {
	p, _ := r.Context().Value(keyPrincipal).(principal)
	return p
}

// call builds the gateway's view of who is calling.
func call(r *http.Request) *gateway.Call {
	c := &gateway.Call{RequestID: requestIDFrom(r), ClientRequestID: ids.ClientLabel(r.Header.Get(HeaderRequestID))}
	if k := principalFrom(r).key; k != nil {
		c.KeyID, c.ProjectID, c.RPM, c.TPM, c.MaxStreams = k.ID, k.ProjectID, k.RPM, k.TPM, k.MaxStreams
	}
	return c
}

// allowModel answers 403 when a virtual key may not use the model.
func (s *Server) allowModel(w http.ResponseWriter, r *http.Request, model string) bool {
	if k := principalFrom(r).key; k != nil && !keys.Allows(k, model) {
		s.writeError(w, r, &provider.Error{Kind: provider.KindForbidden, Code: "model_not_allowed", Param: "model",
			Message: "this key may not use this model"})
		return false
	}
	return true
}

// requestID makes the request's id: always the gateway's own, 128 random
// bits, because the ledger is keyed on it; a client's x-request-id could be
// reused or guessed. The client's id is kept as a label (Call.ClientRequestID,
// the request log) that lookups also find.
func (s *Server) requestID(*http.Request) string { return ids.Request() }

// statusRecorder remembers the status for the request log, times the
// writes (a write blocked on a slow reader is the client's time), and puts
// the timing so far in a Server-Timing header when the head goes out.
type statusRecorder struct {
	http.ResponseWriter
	status    int
	kind      string
	timeline  *timing.Request
	lastWrite time.Duration // offset of the end of the last write or flush
	body      *requestBody  // nil: the request has none
}

// clientBlocked is how long a write must take to count as waiting on the
// client rather than as the gateway's own syscall.
const clientBlocked = time.Millisecond

func (w *statusRecorder) WriteHeader(code int) {
	w.head(code)
	w.ResponseWriter.WriteHeader(code)
}

// head notes the status and adds the timing so far, once, as the head goes out.
func (w *statusRecorder) head(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if w.body != nil {
		if !w.body.done.Load() {
			w.body.answeredEarly(w.Header()) // refused, unread or cut
		}
		w.body.answered()
	}
	if w.timeline != nil {
		w.Header().Set("Server-Timing", w.timeline.ServerTiming(time.Since(w.timeline.Received)))
	}
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	w.head(http.StatusOK) // an implicit 200: net/http still sniffs the type
	start := time.Now()
	n, err := w.ResponseWriter.Write(b)
	w.wrote(start)
	return n, err
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		start := time.Now()
		f.Flush()
		w.wrote(start)
	}
}

func (w *statusRecorder) wrote(start time.Time) {
	if w.timeline == nil {
		return
	}
	end := time.Now()
	if d := end.Sub(start); d >= clientBlocked {
		w.timeline.ClientWait(d)
	}
	w.lastWrite = end.Sub(w.timeline.Received)
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := s.requestID(r)
		w.Header().Set(HeaderOwnRequestID, id)
		// x-request-id echoes a sane id the client sent (the public
		// contract); it labels the request, never keys its money.
		if label := ids.ClientLabel(r.Header.Get(HeaderRequestID)); label != "" {
			w.Header().Set(HeaderRequestID, label)
		} else {
			w.Header().Set(HeaderRequestID, id)
		}
		rt := timing.New(id, start, s.CaptureBodies)
		if s.Traces != nil {
			rt.SetTrace(s.Traces.StartTrace(r.Header))
		}
		rec := &statusRecorder{ResponseWriter: w, timeline: rt, body: s.guardBody(w, r)}
		r = r.WithContext(timing.With(context.WithValue(r.Context(), keyRequestID, id), rt))
		if rec.body != nil {
			r.Body = rec.body
			defer rec.body.release()
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Logger.Error("handler panic", slog.String(attrRequestID, id), slog.Any("panic", v))
				if rec.status == 0 {
					s.writeError(rec, r, &provider.Error{Kind: provider.KindInternal, Message: "internal error"})
				}
			}
			verdict := s.finish(r, rec)
			s.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String(attrRequestID, id), slog.String(attrMethod, r.Method), slog.String(attrPath, r.URL.Path),
				slog.Int(attrStatus, rec.status), slog.String(attrRoute, rec.Header().Get(HeaderRoute)),
				slog.String(attrAttempts, rec.Header().Get(HeaderAttempts)), slog.String(attrKind, rec.kind),
				slog.String(attrVerdict, verdict),
				slog.Float64(attrDuration, float64(time.Since(start).Microseconds())/1000))
		}()
		next.ServeHTTP(rec, r)
	})
}

// presentedKey reads the key from Authorization: Bearer, or x-api-key (the
// Anthropic SDK's header).
func presentedKey(r *http.Request) string {
	key := r.Header.Get("x-api-key")
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, token, _ := strings.Cut(a, " ")
		if strings.EqualFold(scheme, "Bearer") {
			key = strings.TrimSpace(token)
		}
	}
	return key
}

// authenticate resolves the presented key. It says nothing about why a key
// failed: unknown, revoked, expired and malformed keys read alike.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	key := presentedKey(r)
	if key == "" {
		return principal{}, &provider.Error{Kind: provider.KindUnauthorized, Code: "missing_api_key",
			Message: "no API key: send Authorization: Bearer KEY"}
	}
	invalid := &provider.Error{Kind: provider.KindUnauthorized, Code: "invalid_api_key", Message: "invalid API key"}
	sum := sha256.Sum256([]byte(key))
	if s.hasMaster && subtle.ConstantTimeCompare(sum[:], s.masterHash[:]) == 1 {
		return principal{master: true}, nil
	}
	if s.Store == nil {
		return principal{}, invalid
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	k, err := keys.Check(r.Context(), s.keyCache, key, now())
	if errors.Is(err, keys.ErrInvalid) {
		return principal{}, invalid
	}
	if err != nil {
		return principal{}, &provider.Error{Kind: provider.KindInternal, Message: "key lookup failed", Err: err}
	}
	return principal{key: k}, nil
}

// HeaderTimeout lets a client bound its request: "2s", "1500ms" or seconds.
const HeaderTimeout = "x-tidegate-timeout"

// deadline is the request's bound: the config's, shortened by the client's header.
func (s *Server) deadline(r *http.Request) (time.Duration, error) {
	d := s.RequestTimeout
	v := r.Header.Get(HeaderTimeout)
	if v == "" {
		return d, nil
	}
	c, err := time.ParseDuration(v)
	if err != nil {
		secs, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || secs <= 0 || secs > 86400 {
			return 0, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_timeout", Param: HeaderTimeout,
				Message: HeaderTimeout + ` must be a duration ("2s", "1500ms") or seconds`}
		}
		c = time.Duration(secs * float64(time.Second))
	}
	if c <= 0 {
		return 0, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_timeout", Param: HeaderTimeout, Message: HeaderTimeout + " must be positive"}
	}
	if d == 0 || c < d {
		d = c
	}
	return d, nil
}

// auth admits the master key and live virtual keys, and bounds the request
// by its deadline.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if inProcessMaster(r.Context()) {
			h(w, r) // the console's own call, its session already checked
			return
		}
		addr := clientKey(r.RemoteAddr)
		if wait := s.throttle.wait(addr, s.now()); wait > 0 {
			// Refused before the key is looked at: no guess is tried.
			s.writeError(w, r, &provider.Error{Kind: provider.KindRateLimited, Code: "too_many_auth_failures", RetryAfter: wait,
				Message: "too many failed authentications from this address; retry later"})
			return
		}
		p, err := s.authenticate(r)
		if err != nil {
			if provider.AsError(err).Kind == provider.KindUnauthorized && s.throttle.failed(addr, s.now()) {
				s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "authentication failures throttled",
					slog.String("client", addr), slog.Int("failures", s.AuthFailureLimit))
			}
			s.writeError(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), keyPrincipal, p)
		keyID := ""
		if p.key != nil {
			keyID = p.key.ID
		}
		timing.From(ctx).Authenticated(keyID)
		d, err := s.deadline(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		h(w, r.WithContext(ctx))
	}
}

// adminOnly admits the master key alone; to any other caller the admin API
// does not exist (404), so it reveals nothing.
func (s *Server) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return s.auth(func(w http.ResponseWriter, r *http.Request) {
		if !principalFrom(r).master {
			s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "unknown_route",
				Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
			return
		}
		h(w, r)
	})
}

// answered writes the routing headers of the public contract and, when the
// gateway failed, the error in the route's shape; false when it did.
func (s *Server) answered(w http.ResponseWriter, r *http.Request, out gateway.Outcome, err error) bool {
	setOutcome(w, out)
	if err != nil {
		s.writeError(w, r, err)
		return false
	}
	return true
}

// setOutcome writes the routing headers of the public contract.
func setOutcome(w http.ResponseWriter, out gateway.Outcome) {
	if out.Route.Provider != "" {
		w.Header().Set(HeaderRoute, out.Route.String())
	}
	w.Header().Set(HeaderAttempts, strconv.Itoa(out.Attempts))
}

// deliverThenSettle flushes a complete answer (it carries its Content-Length,
// so the client holds all of it) and then bills the request, durably, before
// the handler returns.
func deliverThenSettle(w http.ResponseWriter, out gateway.Outcome) {
	_ = http.NewResponseController(w).Flush()
	out.Settle()
}

// RequestObserver receives every finished API request's record, its verdict
// given: the request log, metrics, traces.
type RequestObserver interface {
	ObserveRequest(ctx context.Context, rec *timing.Record, h http.Header)
}

// finish closes a request's timeline: the record is judged, a stream gets
// the whole timing as a trailer, and the observers see the record. It
// returns the verdict's kind for the access log.
func (s *Server) finish(r *http.Request, rec *statusRecorder) string {
	if !strings.HasPrefix(r.URL.Path, "/v1/") || r.Method != http.MethodPost || (s.Judge == nil && len(s.Observers) == 0) {
		return ""
	}
	rt := rec.timeline
	finished := rec.lastWrite
	if finished == 0 {
		finished = time.Since(rt.Received)
	}
	record := rt.Finish(timing.Meta{Endpoint: r.URL.Path, Route: rec.Header().Get(HeaderRoute), ErrorKind: rec.kind, Status: rec.status}, finished)
	if s.Judge != nil {
		record.Verdict = s.Judge.Judge(&record)
	}
	if record.Stream && rec.status == http.StatusOK {
		// Sent after the last chunk: the head went out at the first token.
		rec.Header().Set(http.TrailerPrefix+"Server-Timing", record.ServerTiming())
	}
	for _, o := range s.Observers {
		o.ObserveRequest(r.Context(), &record, r.Header)
	}
	return record.Verdict.Kind
}

// StreamsInFlight is how many streams are being relayed now.
func (s *Server) StreamsInFlight() int64 { return s.streams.Load() }

// streamStarted counts a stream in flight; call the result when it ends.
func (s *Server) streamStarted() func() {
	s.streams.Add(1)
	return func() { s.streams.Add(-1) }
}
