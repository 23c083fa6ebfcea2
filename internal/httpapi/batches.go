package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/provider"
)

type createBatchRequest struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata"`
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req createBatchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeError(w, r, decodeError(err))
		return
	}
	switch {
	case req.InputFileID == "":
		s.writeError(w, r, invalid("input_file_id", "input_file_id is required"))
		return
	case !slices.Contains(batch.Endpoints, req.Endpoint):
		s.writeError(w, r, invalid("endpoint", "endpoint must be one of %v", batch.Endpoints))
		return
	case req.CompletionWindow != batch.Window:
		s.writeError(w, r, invalid("completion_window", "completion_window must be %q", batch.Window))
		return
	case len(req.Metadata) > 16:
		s.writeError(w, r, invalid("metadata", "metadata holds at most 16 pairs"))
		return
	}
	for k, v := range req.Metadata {
		if utf8.RuneCountInString(k) > 64 || utf8.RuneCountInString(v) > 512 {
			s.writeError(w, r, invalid("metadata", "metadata keys are at most 64 characters and values at most 512"))
			return
		}
	}
	f, err := s.Batch.Store.File(r.Context(), req.InputFileID)
	if errors.Is(err, batch.ErrNotFound) || err == nil && !visible(r, f.ProjectID) {
		s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "not_found", Param: "input_file_id", Message: "no file " + req.InputFileID})
		return
	}
	if err != nil {
		s.writeError(w, r, storeError(err))
		return
	}
	if f.Purpose != batch.PurposeBatch {
		s.writeError(w, r, invalid("input_file_id", "file %s has purpose %q, not batch", f.ID, f.Purpose))
		return
	}
	// The batch belongs to the file's project and is billed to the key
	// that creates it.
	_, key, _ := owner(r)
	now := time.Now().UTC()
	b := &batch.Batch{ID: ids.New("batch"), ProjectID: f.ProjectID, KeyID: key, Endpoint: req.Endpoint, InputFileID: f.ID,
		CompletionWindow: req.CompletionWindow, Metadata: req.Metadata, Status: batch.Validating, CreatedAt: now, ExpiresAt: now.Add(s.Batch.Window)}
	if k := principalFrom(r).key; k != nil {
		b.Models = k.Models
	}
	if err := s.Batch.Store.CreateBatch(r.Context(), b); err != nil {
		s.writeError(w, r, storeError(err))
		return
	}
	if s.Batch.Wake != nil {
		s.Batch.Wake()
	}
	writeJSON(w, http.StatusOK, b.Object())
}

// visibleBatch finds a batch the caller may see; another project's is 404.
func (s *Server) visibleBatch(w http.ResponseWriter, r *http.Request) (*batch.Batch, bool) {
	id := r.PathValue("id")
	b, err := s.Batch.Store.Batch(r.Context(), id)
	if errors.Is(err, batch.ErrNotFound) || err == nil && !visible(r, b.ProjectID) {
		s.writeError(w, r, notFound("batch", id))
		return nil, false
	}
	if err != nil {
		s.writeError(w, r, storeError(err))
		return nil, false
	}
	return b, true
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	if b, ok := s.visibleBatch(w, r); ok {
		writeJSON(w, http.StatusOK, b.Object())
	}
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	q, err := listQuery(r, 20)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if q.Limit > 100 {
		s.writeError(w, r, invalid("limit", "limit must be from 1 to 100"))
		return
	}
	q.Purpose = ""
	limit := q.Limit
	q.Limit++
	bs, err := s.Batch.Store.Batches(r.Context(), q)
	if err != nil {
		s.writeError(w, r, storeError(err))
		return
	}
	out := make([]batch.BatchObject, len(bs))
	for i := range bs {
		out[i] = bs[i].Object()
	}
	writeJSON(w, http.StatusOK, newPage(out, limit, func(b batch.BatchObject) string { return b.ID }))
}

// cancelBatch stops issuing the batch's items: those in flight finish,
// the rest are answered batch_cancelled, and the batch ends cancelled.
func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	b, ok := s.visibleBatch(w, r)
	if !ok {
		return
	}
	b, err := batch.Cancel(r.Context(), s.Batch.Store, b.ID, time.Now().UTC())
	var nc *batch.NotCancellableError
	if errors.As(err, &nc) {
		s.writeError(w, r, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_state", Message: nc.Error()})
		return
	}
	if err != nil {
		s.writeError(w, r, storeError(err))
		return
	}
	if s.Batch.Wake != nil {
		s.Batch.Wake()
	}
	writeJSON(w, http.StatusOK, b.Object())
}
