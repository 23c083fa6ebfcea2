package httpapi

import (
	"net/http"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/timing"
)

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
	if !s.answered(w, r, out, err) {
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
	if !s.answered(w, r, out, err) {
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	if anthropicClient(r) {
		s.anthropicModels(w, r)
		return
	}
	writeJSON(w, http.StatusOK, llm.ModelList{Object: "list", Data: s.visibleModels(r)})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, m := range s.visibleModels(r) {
		if m.ID == id {
			if anthropicClient(r) {
				writeJSON(w, http.StatusOK, s.anthropicModel(m))
				return
			}
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "model_not_found", Param: "model",
		Message: "the model does not exist"})
}
