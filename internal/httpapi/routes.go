package httpapi

import (
	"net/http"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/anthropic"
	"github.com/tidegate/tidegate/internal/timing"
)

// messages serves Anthropic's /v1/messages through any provider.
func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	var mr anthropic.MessagesRequest
	if err := s.decode(w, r, &mr); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := mr.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	timing.From(r.Context()).Describe(mr.Model, mr.Stream)
	if !s.allowModel(w, r, mr.Model) {
		return
	}
	req := anthropic.ToChatRequest(&mr)
	ctx := r.Context()
	if !mr.Stream {
		resp, out, err := s.Gateway.Chat(ctx, call(r), req)
		setOutcome(w, out)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		captureAnswer(r, resp)
		s.setWriteDeadline(w)
		writeJSON(w, http.StatusOK, anthropic.FromChatResponse(resp))
		deliverThenSettle(w, out)
		return
	}
	stream, out, err := s.Gateway.ChatStream(ctx, call(r), req)
	setOutcome(w, out)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer stream.Close()
	defer s.streamStarted()()
	sw := s.newSSE(w)
	enc := anthropic.NewStreamEncoder(sw.event)
	for stream.Next() {
		sw.hold = stream.Buffered()
		if err := enc.Chunk(stream.Chunk()); err != nil {
			return
		}
		if !sw.hold {
			if err := sw.flush(); err != nil {
				return
			}
		}
	}
	sw.hold = false
	if err := stream.Err(); err != nil {
		e := provider.AsError(err)
		s.logStreamError(r, e)
		_ = enc.Fail(e)
		return
	}
	_ = enc.Finish()
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req llm.EmbeddingRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Model == "" {
		s.writeError(w, r, &provider.Error{Kind: provider.KindInvalidRequest, Code: "missing_model", Param: "model", Message: "model is required"})
		return
	}
	if len(req.Input) == 0 || string(req.Input) == "null" || string(req.Input) == `""` || string(req.Input) == "[]" {
		s.writeError(w, r, invalid("input", "input must be a non-empty string or array"))
		return
	}
	timing.From(r.Context()).Describe(req.Model, false)
	if !s.allowModel(w, r, req.Model) {
		return
	}
	llm.StripRoutingFields(req.Extra)
	resp, out, err := s.Gateway.Embeddings(r.Context(), call(r), &req)
	setOutcome(w, out)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
	deliverThenSettle(w, out)
}

func (s *Server) images(w http.ResponseWriter, r *http.Request) {
	var req llm.ImageRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case req.Model == "":
		s.writeError(w, r, &provider.Error{Kind: provider.KindInvalidRequest, Code: "missing_model", Param: "model", Message: "model is required"})
		return
	case req.Prompt == "":
		s.writeError(w, r, invalid("prompt", "prompt is required"))
		return
	case req.N != nil && (*req.N < 1 || *req.N > 10):
		s.writeError(w, r, invalid("n", "n must be between 1 and 10"))
		return
	}
	timing.From(r.Context()).Describe(req.Model, false)
	if !s.allowModel(w, r, req.Model) {
		return
	}
	llm.StripRoutingFields(req.Extra)
	resp, out, err := s.Gateway.Images(r.Context(), call(r), &req)
	setOutcome(w, out)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, llm.ModelList{Object: "list", Data: s.visibleModels(r)})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, m := range s.visibleModels(r) {
		if m.ID == id {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "model_not_found", Param: "model",
		Message: "the model does not exist"})
}
