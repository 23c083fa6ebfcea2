package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/timing"
)

// MaxDepth bounds JSON nesting. Real requests nest a dozen levels (tool
// schemas); hostile ones nest thousands to burn CPU and stack.
const MaxDepth = 64

// jsonDepth returns the deepest nesting of a JSON text, stopping at limit+1.
func jsonDepth(b []byte, limit int) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > deepest {
				deepest = depth
				if deepest > limit {
					return deepest
				}
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// limited is a request whose client numbers have bounds (llm's Limit…).
type limited interface{ CheckLimits() error }

// decode reads and decodes a JSON body into v, and checks v's numbers
// against their bounds before anything computes with them.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	timing.From(r.Context()).Input(body)
	if jsonDepth(body, MaxDepth) > MaxDepth {
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_json",
			Message: fmt.Sprintf("JSON nested deeper than %d levels", MaxDepth)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fieldError(err)
	}
	if l, ok := v.(limited); ok {
		return fieldError(l.CheckLimits())
	}
	return nil
}

// fieldError renders a decoding or bounds error, naming the field when llm did.
func fieldError(err error) error {
	if err == nil {
		return nil
	}
	var fe *llm.FieldError
	if errors.As(err, &fe) {
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: fe.Code, Param: fe.Param, Message: fe.Message}
	}
	return decodeError(err)
}

func invalid(param, format string, args ...any) *provider.Error {
	return &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_value", Param: param, Message: fmt.Sprintf(format, args...)}
}

var validRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

// validateChat checks what OpenAI's API itself rejects, before any upstream is
// called (decode has checked the numbers against their bounds).
func validateChat(req *llm.ChatRequest) error {
	if req.Model == "" {
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: "missing_model", Param: "model", Message: "model is required"}
	}
	if len(req.Messages) == 0 {
		return invalid("messages", "messages must hold at least one message")
	}
	for i, m := range req.Messages {
		if !validRoles[m.Role] {
			return invalid(fmt.Sprintf("messages[%d].role", i), "unknown role %q", m.Role)
		}
		if m.Role == "tool" && m.ToolCallID == "" {
			return invalid(fmt.Sprintf("messages[%d].tool_call_id", i), "a tool message needs tool_call_id")
		}
	}
	if t := req.Temperature; t != nil && (*t < 0 || *t > 2) {
		return invalid("temperature", "temperature must be between 0 and 2")
	}
	if p := req.TopP; p != nil && (*p < 0 || *p > 1) {
		return invalid("top_p", "top_p must be between 0 and 1")
	}
	if len(req.Stop) > 4 {
		return invalid("stop", "at most 4 stop sequences")
	}
	for i, t := range req.Tools {
		if t.Type != "function" || t.Function.Name == "" {
			return invalid(fmt.Sprintf("tools[%d]", i), "a tool must be of type function and have a name")
		}
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "json_object":
		case "json_schema":
			if len(rf.JSONSchema) == 0 {
				return invalid("response_format.json_schema", "json_schema is required for type json_schema")
			}
		default:
			return invalid("response_format.type", "unknown response_format type %q", rf.Type)
		}
	}
	if req.StreamOptions != nil && !req.Stream {
		return invalid("stream_options", "stream_options is only allowed with stream: true")
	}
	return nil
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var req llm.ChatRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := validateChat(&req); err != nil {
		s.writeError(w, r, err)
		return
	}
	timing.From(r.Context()).Describe(req.Model, req.Stream)
	if !s.allowModel(w, r, req.Model) {
		return
	}
	if n := llm.StripRoutingFields(req.Extra); n > 0 {
		s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "ignored routing fields in request body",
			slog.String(attrRequestID, requestIDFrom(r)), slog.Int("count", n))
	}
	ctx := r.Context()
	if !req.Stream {
		resp, out, err := s.Gateway.Chat(ctx, call(r), &req)
		if !s.answered(w, r, out, err) {
			return
		}
		captureAnswer(r, resp)
		s.setWriteDeadline(w)
		writeJSON(w, http.StatusOK, resp)
		deliverThenSettle(w, out)
		return
	}
	// The client speaks OpenAI's dialect: an OpenAI-dialect upstream's
	// chunks are relayed as its bytes, scanned rather than decoded.
	stream, out, err := s.Gateway.ChatStream(provider.WithByteRelay(ctx, true), call(r), &req)
	if !s.answered(w, r, out, err) {
		return
	}
	defer stream.Close()
	defer s.streamStarted()()
	sw := s.newSSE(w)
	e, ok := s.pump(r, sw, stream, func(c *llm.ChatChunk) error { return sw.data(c) })
	if !ok {
		return // the client is gone or not reading
	}
	if e != nil {
		// Past the commit point: end with an error event and no [DONE].
		_ = sw.data(errorBody(r, e))
		return
	}
	_ = sw.raw([]byte("data: [DONE]\n\n"))
}

func (s *Server) logStreamError(r *http.Request, e *provider.Error) {
	s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "stream broke after it started",
		slog.String(attrRequestID, requestIDFrom(r)), slog.String(attrKind, e.Kind.String()),
		slog.String("provider", e.Provider), slog.String("error", provider.Redact(e.Error())))
}

func requestIDFrom(r *http.Request) string {
	id, _ := r.Context().Value(keyRequestID).(string)
	return id
}

// captureAnswer keeps a whole answer's text in the record, when bodies are kept.
func captureAnswer(r *http.Request, resp *llm.ChatResponse) {
	rt := timing.From(r.Context())
	if !rt.Capturing() {
		return
	}
	for _, c := range resp.Choices {
		rt.Output(c.Message.ReasoningContent)
		rt.Output(c.Message.Content.String())
		for _, tc := range c.Message.ToolCalls {
			rt.Output(tc.Function.Arguments)
		}
	}
}
