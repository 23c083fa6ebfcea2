package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/anthropic"
)

// anthropicRoute reports whether errors on this request take Anthropic's
// shape: /v1/messages and every path under it, known or not.
func anthropicRoute(r *http.Request) bool {
	return r.URL.Path == "/v1/messages" || strings.HasPrefix(r.URL.Path, "/v1/messages/")
}

// clientMessage is what a client reads: the provider is named, secrets never are.
func clientMessage(e *provider.Error) string {
	msg := e.Message
	if msg == "" {
		msg = e.Kind.String()
	}
	if e.Provider != "" && e.Status != 0 {
		msg = fmt.Sprintf("upstream %s (HTTP %d): %s", e.Provider, e.Status, msg)
	} else if e.Provider != "" && e.Kind.Status() >= 500 {
		msg = fmt.Sprintf("upstream %s: %s", e.Provider, msg)
	}
	return provider.Redact(msg)
}

// errorBody renders an error in the route's shape.
func errorBody(r *http.Request, e *provider.Error) any {
	msg := clientMessage(e)
	if anthropicRoute(r) {
		id, _ := r.Context().Value(keyRequestID).(string)
		return anthropic.ErrorResponse{Type: "error", Error: anthropic.ErrorDetail{Type: e.Kind.AnthropicType(), Message: msg}, RequestID: id}
	}
	d := llm.ErrorDetail{Message: msg, Type: e.Kind.OpenAIType()}
	if code := errorCode(e); code != "" {
		d.Code = &code
	}
	if e.Param != "" {
		d.Param = &e.Param
	}
	return llm.ErrorBody{Error: d}
}

// errorCode prefers tidegate's stable codes for kinds clients branch on.
func errorCode(e *provider.Error) string {
	switch e.Kind {
	case provider.KindContextLength:
		return "context_length_exceeded"
	case provider.KindContentFilter:
		return "content_filter"
	case provider.KindUpstreamAuth:
		return "upstream_auth_failed"
	}
	if e.Code == "" && e.Provider != "" {
		return e.Kind.String()
	}
	return e.Code
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := provider.AsError(err)
	if rec, ok := w.(*statusRecorder); ok {
		rec.kind = e.Kind.String()
	}
	status := e.Kind.Status()
	if e.Kind == provider.KindCanceled {
		return // nobody is listening
	}
	if e.Kind == provider.KindInternal {
		// The client reads only the message; the cause is for the operator,
		// scrubbed of anything key-shaped.
		id, _ := r.Context().Value(keyRequestID).(string)
		cause := ""
		if e.Err != nil {
			cause = provider.Redact(e.Err.Error())
		}
		s.Logger.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String(attrRequestID, id),
			slog.String("message", provider.Redact(e.Message)), slog.String("error", cause))
	}
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && e.RetryAfter != provider.NoRetry {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	if anthropicRoute(r) {
		status = anthropicStatus(w, r, e, status)
	}
	writeJSON(w, status, errorBody(r, e))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	var err error
	if r, ok := v.(*llm.ChatResponse); ok {
		b, err = r.Encoded()
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"cannot encode the answer","type":"server_error","code":null,"param":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decodeError explains a JSON decoding failure, naming the field when it can.
func decodeError(err error) *provider.Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	e := &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_json"}
	switch {
	case errors.As(err, &typ):
		e.Code, e.Param = "invalid_type", typ.Field
		e.Message = fmt.Sprintf("%s: expected %s, got JSON %s", fieldName(typ.Field), typeWords(typ.Type), typ.Value)
	case errors.As(err, &syn):
		e.Message = fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case strings.Contains(err.Error(), "exceeded max depth"):
		e.Message = "JSON nested too deeply"
	default:
		e.Message = "malformed JSON: " + err.Error()
	}
	return e
}

func fieldName(f string) string {
	if f == "" {
		return "body"
	}
	return f
}
