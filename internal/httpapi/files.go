package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/files"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// BatchStore keeps the Batch API's records (internal/store).
type BatchStore interface {
	PutFile(ctx context.Context, f *batch.File) error
	File(ctx context.Context, id string) (*batch.File, error)
	Files(ctx context.Context, q batch.ListQuery) ([]batch.File, error)
	DeleteFile(ctx context.Context, id string) error
	CreateBatch(ctx context.Context, b *batch.Batch) error
	Batch(ctx context.Context, id string) (*batch.Batch, error)
	Batches(ctx context.Context, q batch.ListQuery) ([]batch.Batch, error)
	UpdateBatch(ctx context.Context, id string, from []batch.Status, u batch.Update) (bool, error)
}

// BatchAPI serves /v1/files and /v1/batches.
type BatchAPI struct {
	Store BatchStore
	Files files.Storage
	// MaxFileBytes bounds an uploaded file (server.body_limit bounds the
	// whole upload too).
	MaxFileBytes int64
	// Window is how long a batch has to finish (completion_window "24h";
	// shorter in tests).
	Window time.Duration
	// Wake tells the executor a batch was created or cancelled.
	Wake func()
}

func (s *Server) batchRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/files", s.auth(s.batchOn(s.uploadFile)))
	mux.HandleFunc("GET /v1/files", s.auth(s.batchOn(s.listFiles)))
	mux.HandleFunc("GET /v1/files/{id}", s.auth(s.batchOn(s.getFile)))
	mux.HandleFunc("GET /v1/files/{id}/content", s.auth(s.batchOn(s.fileContent)))
	mux.HandleFunc("DELETE /v1/files/{id}", s.auth(s.batchOn(s.deleteFile)))
	mux.HandleFunc("POST /v1/batches", s.auth(s.batchOn(s.createBatch)))
	mux.HandleFunc("GET /v1/batches", s.auth(s.batchOn(s.listBatches)))
	mux.HandleFunc("GET /v1/batches/{id}", s.auth(s.batchOn(s.getBatch)))
	mux.HandleFunc("POST /v1/batches/{id}/cancel", s.auth(s.batchOn(s.cancelBatch)))
}

// batchOn answers 404 when the Batch API is not configured.
func (s *Server) batchOn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.Batch == nil {
			s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "unknown_route", Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
			return
		}
		h(w, r)
	}
}

// owner is the caller's project and key; the master key sees every project.
func owner(r *http.Request) (project, key string, all bool) {
	p := principalFrom(r)
	if p.key != nil {
		return p.key.ProjectID, p.key.ID, false
	}
	return "", "", p.master
}

// visible reports whether the caller may see a record of project.
func visible(r *http.Request, project string) bool {
	mine, _, all := owner(r)
	return all || mine == project
}

func notFound(what, id string) *provider.Error {
	return &provider.Error{Kind: provider.KindNotFound, Code: "not_found", Message: fmt.Sprintf("no %s %s", what, id)}
}

func storeError(err error) *provider.Error {
	return &provider.Error{Kind: provider.KindInternal, Message: "store error", Err: err}
}

// CheckBatchBody checks a batch line's body as its endpoint would check
// the request (types, bounds, OpenAI's own refusals).
func CheckBatchBody(url string, body []byte) error {
	if jsonDepth(body, MaxDepth) > MaxDepth {
		return fmt.Errorf("JSON nested deeper than %d levels", MaxDepth)
	}
	describe := func(err error) error {
		if err == nil {
			return nil
		}
		pe := provider.AsError(fieldError(err))
		if pe.Param != "" {
			return fmt.Errorf("%s (body.%s)", pe.Message, pe.Param)
		}
		return errors.New(pe.Message)
	}
	switch url {
	case batch.EndpointChat:
		var req llm.ChatRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return describe(err)
		}
		if err := req.CheckLimits(); err != nil {
			return describe(err)
		}
		if req.Stream {
			return errors.New("stream is not allowed in a batch (body.stream)")
		}
		return describe(validateChat(&req))
	case batch.EndpointEmbeddings:
		var req llm.EmbeddingRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return describe(err)
		}
		if in := string(bytes.TrimSpace(req.Input)); in == "" || in == "null" {
			return errors.New("input is required (body.input)")
		}
		return describe(req.CheckLimits())
	}
	return fmt.Errorf("unsupported url %q", url)
}

// servesModel reports whether the gateway serves model, for an upload's
// lines: an unknown model fails the upload, naming its line.
func (s *Server) servesModel(model string) bool {
	return s.Gateway == nil || s.Gateway.Router == nil || s.Gateway.Router.Serves(model)
}

func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) {
	up, done, err := s.readUpload(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer done()
	switch purpose := up.Value("purpose"); {
	case purpose == "":
		s.writeError(w, r, invalid("purpose", "purpose is required"))
		return
	case purpose != batch.PurposeBatch:
		s.writeError(w, r, invalid("purpose", "tidegate keeps files for purpose %q only, not %q", batch.PurposeBatch, purpose))
		return
	case len(up.Files) != 1 || up.Files[0].Field != "file":
		s.writeError(w, r, invalid("file", "one file is required, in the field file"))
		return
	}
	f := up.Files[0]
	if max := s.Batch.MaxFileBytes; max > 0 && f.Size > max {
		s.writeError(w, r, &provider.Error{Kind: provider.KindTooLarge, Code: "file_too_large", Param: "file",
			Message: fmt.Sprintf("the file is %d bytes, over the limit of %d", f.Size, max)})
		return
	}
	_, problems, err := batch.Parse(io.NewSectionReader(f.Content, f.Offset, f.Size), batch.Check{Body: CheckBatchBody, MaxLine: int(s.BodyLimit), Served: s.servesModel})
	if err != nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindInternal, Message: "reading the upload failed", Err: err})
		return
	}
	if len(problems) > 0 {
		p := problems[0]
		msg := p.Message
		if len(problems) > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", len(problems)-1)
		}
		s.writeError(w, r, &provider.Error{Kind: provider.KindInvalidRequest, Code: p.Code, Param: "file", Message: msg})
		return
	}
	project, key, _ := owner(r)
	rec := &batch.File{ID: "file-" + ids.New("")[1:], ProjectID: project, KeyID: key, Purpose: batch.PurposeBatch,
		Filename: f.Filename, Bytes: f.Size, Status: "processed", CreatedAt: time.Now().UTC()}
	if err := s.Batch.Files.Put(r.Context(), rec.ID, io.NewSectionReader(f.Content, f.Offset, f.Size), f.Size); err != nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindInternal, Message: "storing the file failed", Err: err})
		return
	}
	if err := s.Batch.Store.PutFile(r.Context(), rec); err != nil {
		s.writeError(w, r, storeError(err))
		return
	}
	writeJSON(w, http.StatusOK, rec.Object())
}

// listQuery reads after, limit (1…100, default 20 for batches, 10,000 for
// files as OpenAI's) and purpose.
func listQuery(r *http.Request, defaultLimit int) (batch.ListQuery, error) {
	project, _, all := owner(r)
	q := batch.ListQuery{ProjectID: project, All: all, After: r.URL.Query().Get("after"), Purpose: r.URL.Query().Get("purpose"), Limit: defaultLimit}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return q, invalid("limit", "limit must be a whole number from 1 to 10000")
		}
		q.Limit = n
	}
	return q, nil
}

// page is OpenAI's list envelope.
type page[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// newPage builds a page from limit+1 records: the extra one says more follow.
func newPage[T any](data []T, limit int, id func(T) string) page[T] {
	p := page[T]{Object: "list", Data: data}
	if len(data) > limit {
		p.Data, p.HasMore = data[:limit], true
	}
	if p.Data == nil {
		p.Data = []T{}
	}
	if n := len(p.Data); n > 0 {
		first, last := id(p.Data[0]), id(p.Data[n-1])
		p.FirstID, p.LastID = &first, &last
	}
	return p
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	q, err := listQuery(r, 10000)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := q.Limit
	q.Limit++
	fs, err := s.Batch.Store.Files(r.Context(), q)
	if err != nil {
		s.writeError(w, r, storeError(err))
		return
	}
	out := make([]batch.FileObject, len(fs))
	for i := range fs {
		out[i] = fs[i].Object()
	}
	writeJSON(w, http.StatusOK, newPage(out, limit, func(f batch.FileObject) string { return f.ID }))
}

// visibleFile finds a file the caller may see; another project's is 404.
func (s *Server) visibleFile(w http.ResponseWriter, r *http.Request) (*batch.File, bool) {
	id := r.PathValue("id")
	f, err := s.Batch.Store.File(r.Context(), id)
	if errors.Is(err, batch.ErrNotFound) || err == nil && !visible(r, f.ProjectID) {
		s.writeError(w, r, notFound("file", id))
		return nil, false
	}
	if err != nil {
		s.writeError(w, r, storeError(err))
		return nil, false
	}
	return f, true
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.visibleFile(w, r); ok {
		writeJSON(w, http.StatusOK, f.Object())
	}
}

func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	f, ok := s.visibleFile(w, r)
	if !ok {
		return
	}
	body, err := s.Batch.Files.Open(r.Context(), f.ID)
	if errors.Is(err, files.ErrNotFound) {
		s.writeError(w, r, notFound("file content for", f.ID))
		return
	}
	if err != nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindInternal, Message: "reading the file failed", Err: err})
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(f.Bytes, 10))
	s.setWriteDeadline(w)
	_, _ = io.Copy(w, body)
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	f, ok := s.visibleFile(w, r)
	if !ok {
		return
	}
	if err := s.Batch.Store.DeleteFile(r.Context(), f.ID); err != nil && !errors.Is(err, batch.ErrNotFound) {
		s.writeError(w, r, storeError(err))
		return
	}
	if err := s.Batch.Files.Delete(r.Context(), f.ID); err != nil {
		s.Logger.Warn("deleting a file's bytes failed", "file", f.ID, "error", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": f.ID, "object": "file", "deleted": true})
}
