package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/anthropic"
	"github.com/tidegate/tidegate/internal/timing"
)

// HeaderEstimated marks a token count tidegate estimated because no target
// of the model speaks Anthropic's API.
const HeaderEstimated = "x-tidegate-estimated"

// messagesBody decodes a /v1/messages body and keeps its bytes, for the
// targets that take it natively.
type messagesBody struct {
	raw []byte
	anthropic.MessagesRequest
}

func (m *messagesBody) UnmarshalJSON(b []byte) error {
	m.raw = b
	return m.MessagesRequest.UnmarshalJSON(b)
}

// anthropicStatus gives an error on an Anthropic route its request-id
// header (the SDKs' name for x-request-id) and Anthropic's status: 529 for
// overload, which the SDKs surface as an overloaded error.
func anthropicStatus(w http.ResponseWriter, r *http.Request, e *provider.Error, status int) int {
	w.Header().Set("request-id", requestIDFrom(r))
	if e.Kind == provider.KindOverloaded {
		return 529
	}
	return status
}

// anthropicClient reports whether a request comes from an Anthropic client,
// which always sends anthropic-version.
func anthropicClient(r *http.Request) bool { return r.Header.Get("anthropic-version") != "" }

// messagesRequest decodes and checks a /v1/messages (or count_tokens) body
// and builds the gateway's request; false when an error was answered.
func (s *Server) messagesRequest(w http.ResponseWriter, r *http.Request, counting bool) (*anthropic.MessagesRequest, *gateway.MessagesRequest, bool) {
	w.Header().Set("request-id", requestIDFrom(r))
	var body messagesBody
	if err := s.decode(w, r, &body); err != nil {
		s.writeError(w, r, err)
		return nil, nil, false
	}
	mr := &body.MessagesRequest
	if counting && mr.MaxTokens == 0 {
		mr.MaxTokens = 1 // count_tokens takes no max_tokens
	}
	if err := mr.Validate(); err != nil {
		s.writeError(w, r, err)
		return nil, nil, false
	}
	timing.From(r.Context()).Describe(mr.Model, mr.Stream)
	if !s.allowModel(w, r, mr.Model) {
		return nil, nil, false
	}
	header := http.Header{}
	for _, k := range anthropic.ForwardedHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			header[http.CanonicalHeaderKey(k)] = v
		}
	}
	raw := body.raw
	req := &gateway.MessagesRequest{Model: mr.Model, Stream: mr.Stream, PromptBytes: mr.PromptBytes(),
		MaxTokens: mr.MaxTokens, Needs: mr.Needs(),
		Native: func(model string) (*provider.NativeRequest, error) {
			b, err := anthropic.NativeBody(raw, model)
			if err != nil {
				return nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_json", Message: err.Error()}
			}
			return &provider.NativeRequest{Body: b, Header: header}, nil
		}}
	if !counting {
		req.Chat, req.ChatErr = anthropic.ToChatRequest(mr)
	}
	return mr, req, true
}

// messages serves Anthropic's /v1/messages: natively on targets that speak
// it (the client's body and the upstream's answer, untouched but for the
// model), through translation on the others.
func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	_, req, ok := s.messagesRequest(w, r, false)
	if !ok {
		return
	}
	ctx := r.Context()
	if !req.Stream {
		ans, out, err := s.Gateway.Messages(ctx, call(r), req)
		if !s.answered(w, r, out, err) {
			return
		}
		s.setWriteDeadline(w)
		if ans.Native != nil {
			timing.From(ctx).Output(ans.Native.Output)
			writeRawJSON(w, ans.Native.Body)
		} else {
			captureAnswer(r, ans.Chat)
			writeJSON(w, http.StatusOK, anthropic.FromChatResponse(ans.Chat))
		}
		deliverThenSettle(w, out)
		return
	}
	stream, out, err := s.Gateway.MessagesStream(ctx, call(r), req)
	if !s.answered(w, r, out, err) {
		return
	}
	defer stream.Close()
	defer s.streamStarted()()
	sw := s.newSSE(w)
	if stream.Native {
		s.relayEvents(w, r, sw, stream)
		return
	}
	enc := anthropic.NewStreamEncoder(sw.event)
	enc.InputTokens = int(gateway.EstimateTokens(int(min(req.PromptBytes, 1<<40))))
	e, ok := s.pump(r, sw, stream, enc.Chunk)
	if !ok {
		return
	}
	if e != nil {
		_ = enc.Fail(e)
		return
	}
	_ = enc.Finish()
}

// relayEvents writes a native stream's events as they came; a break after
// the commit point ends it with an error event in Anthropic's shape.
func (s *Server) relayEvents(w http.ResponseWriter, r *http.Request, sw *sseWriter, stream *gateway.MessagesStream) {
	e, ok := s.pump(r, sw, stream, func(c *llm.ChatChunk) error { return sw.raw(c.Raw) })
	if !ok {
		return
	}
	if e != nil {
		_ = sw.event("error", errorBody(r, e))
		return
	}
	_ = sw.flush()
}

// countTokens serves /v1/messages/count_tokens: Anthropic's own count when
// the model has a target that speaks its API, else an estimate, marked so
// by the x-tidegate-estimated header.
func (s *Server) countTokens(w http.ResponseWriter, r *http.Request) {
	_, req, ok := s.messagesRequest(w, r, true)
	if !ok {
		return
	}
	ans, out, err := s.Gateway.CountTokens(r.Context(), req)
	if !s.answered(w, r, out, err) {
		return
	}
	if ans != nil {
		writeRawJSON(w, ans.Body)
		return
	}
	w.Header().Set(HeaderEstimated, "true")
	// Four bytes a token, the usual average; images and documents count flat.
	writeJSON(w, http.StatusOK, map[string]int64{"input_tokens": gateway.EstimateTokens(int(min(req.PromptBytes, 1<<40)))})
}

// unknownMessagesRoute answers the /v1/messages/* routes tidegate does not
// serve (batches, …) in Anthropic's shape.
func (s *Server) unknownMessagesRoute(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "unknown_route",
		Message: "no route " + r.Method + " " + r.URL.Path})
}

// writeRawJSON writes an upstream's JSON answer byte for byte.
func writeRawJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// anthropicModelInfo is a model in Anthropic's /v1/models shape.
type anthropicModelInfo struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

func (s *Server) anthropicModel(m llm.Model) anthropicModelInfo {
	return anthropicModelInfo{Type: "model", ID: m.ID, DisplayName: m.ID,
		CreatedAt: time.Unix(m.Created, 0).UTC().Format(time.RFC3339)}
}

// anthropicModels lists the models in Anthropic's shape (one page), for
// clients that send anthropic-version.
func (s *Server) anthropicModels(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("request-id", requestIDFrom(r))
	models := s.visibleModels(r) // a key sees its allowlist only
	page := struct {
		Data    []anthropicModelInfo `json:"data"`
		HasMore bool                 `json:"has_more"`
		FirstID *string              `json:"first_id"`
		LastID  *string              `json:"last_id"`
	}{Data: make([]anthropicModelInfo, 0, len(models))}
	for _, m := range models {
		page.Data = append(page.Data, s.anthropicModel(m))
	}
	if n := len(page.Data); n > 0 {
		page.FirstID, page.LastID = &page.Data[0].ID, &page.Data[n-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}
