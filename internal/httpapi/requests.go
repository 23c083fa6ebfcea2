package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/timing"
)

// RequestFinder looks up a past request's record by its id.
type RequestFinder interface {
	Request(ctx context.Context, id string) (*timing.Record, error)
}

// TraceStarter gives a request its trace context from the client's headers
// (its traceparent, if any) when tracing is on.
type TraceStarter interface {
	StartTrace(h http.Header) timing.Trace
}

// StatusSource reports every target's live state (GET /admin/status).
type StatusSource interface {
	Status(ctx context.Context) (any, error)
}

// getRequest answers GET /admin/requests/{id}: the request's timeline,
// phases and verdict.
func (s *Server) getRequest(w http.ResponseWriter, r *http.Request) {
	if s.Requests == nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindUnsupported, Code: "request_log_off", Message: "the request log is off"})
		return
	}
	rec, err := s.Requests.Request(r.Context(), r.PathValue("id"))
	if errors.Is(err, reqlog.ErrNotFound) {
		s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "not_found", Message: "no request with that id in the log"})
		return
	}
	if err != nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindInternal, Message: "request log error", Err: err})
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// status answers GET /admin/status: each target's success rate, time to
// first token, decode rate, breaker state and effective serving time.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if s.Status == nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindUnsupported, Code: "status_off", Message: "no status source"})
		return
	}
	v, err := s.Status.Status(r.Context())
	if err != nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindInternal, Message: "status error", Err: err})
		return
	}
	writeJSON(w, http.StatusOK, v)
}
