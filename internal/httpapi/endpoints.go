package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/timing"
)

// missingModel is the answer to a request that names no model.
var missingModel = &provider.Error{Kind: provider.KindInvalidRequest, Code: "missing_model", Param: "model", Message: "model is required"}

// admit describes the request for its timeline and checks the key may use the model.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, model string) bool {
	timing.From(r.Context()).Describe(model, false)
	return s.allowModel(w, r, model)
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req llm.CompletionRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch p := string(bytes.TrimSpace(req.Prompt)); {
	case req.Model == "":
		s.writeError(w, r, missingModel)
		return
	case p == "" || p == "null":
		s.writeError(w, r, invalid("prompt", "prompt is required"))
		return
	case req.Stream:
		s.writeError(w, r, &provider.Error{Kind: provider.KindInvalidRequest, Code: "unsupported_value", Param: "stream",
			Message: "tidegate does not stream legacy completions; send stream: false, or use /v1/chat/completions"})
		return
	}
	if !s.admit(w, r, req.Model) {
		return
	}
	llm.StripRoutingFields(req.Extra)
	resp, out, err := s.Gateway.Completions(r.Context(), call(r), &req)
	s.deliver(w, r, out, err, func() {
		if resp.Raw != nil {
			writeRawJSON(w, resp.Raw)
		} else {
			writeJSON(w, http.StatusOK, resp)
		}
	})
}

// deliver ends a one-shot request: the routing headers, then the error or
// the answer (write), then the bill.
func (s *Server) deliver(w http.ResponseWriter, r *http.Request, out gateway.Outcome, err error, write func()) {
	if !s.answered(w, r, out, err) {
		return
	}
	write()
	deliverThenSettle(w, out)
}

func (s *Server) moderations(w http.ResponseWriter, r *http.Request) {
	var req llm.ModerationRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in := string(bytes.TrimSpace(req.Input)); in == "" || in == "null" || in == `""` || in == "[]" {
		s.writeError(w, r, invalid("input", "input must be a non-empty string or array"))
		return
	}
	if req.Model == "" {
		req.Model = llm.DefaultModerationModel // as OpenAI does
	}
	if !s.admit(w, r, req.Model) {
		return
	}
	resp, out, err := s.Gateway.Moderations(r.Context(), call(r), &req)
	s.deliver(w, r, out, err, func() { writeJSON(w, http.StatusOK, resp) })
}

func (s *Server) transcriptions(w http.ResponseWriter, r *http.Request) {
	s.transcribe(w, r, provider.Transcribe)
}

func (s *Server) translations(w http.ResponseWriter, r *http.Request) {
	s.transcribe(w, r, provider.Translate)
}

func (s *Server) transcribe(w http.ResponseWriter, r *http.Request, task provider.AudioTask) {
	up, done, err := s.readUpload(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer done()
	switch {
	case up.Value("model") == "":
		s.writeError(w, r, missingModel)
		return
	case len(up.Files) != 1 || up.Files[0].Field != "file":
		s.writeError(w, r, invalid("file", "one audio file is required, in the field file"))
		return
	}
	if !s.admit(w, r, up.Value("model")) {
		return
	}
	resp, out, err := s.Gateway.Transcription(r.Context(), call(r), task, up)
	s.deliver(w, r, out, err, func() {
		w.Header().Set("Content-Type", resp.ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(resp.Body)
	})
}

func (s *Server) speech(w http.ResponseWriter, r *http.Request) {
	var req llm.SpeechRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case req.Model == "":
		s.writeError(w, r, missingModel)
		return
	case req.Input == "":
		s.writeError(w, r, invalid("input", "input is required"))
		return
	}
	if !s.admit(w, r, req.Model) {
		return
	}
	llm.StripRoutingFields(req.Extra)
	audio, out, err := s.Gateway.Speech(r.Context(), call(r), &req)
	if !s.answered(w, r, out, err) {
		return
	}
	defer out.Settle() // the upstream bills the audio whether or not the client reads it all
	defer audio.Close()
	w.Header().Set("Content-Type", audio.ContentType)
	w.WriteHeader(http.StatusOK)
	relayBinary(w, audio)
}

// relayBinary copies a binary answer to the client as it arrives, each
// read flushed, until it ends or the client goes.
func relayBinary(w http.ResponseWriter, body io.Reader) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF, or an upstream cut: the client sees the body end short
		}
	}
}

// defaultImageEditModel is what OpenAI uses when an edit names no model.
const defaultImageEditModel = "dall-e-2"

func (s *Server) imageEdits(w http.ResponseWriter, r *http.Request) {
	up, done, err := s.readUpload(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer done()
	if up.Value("model") == "" {
		up = up.With("model", defaultImageEditModel)
	}
	asked := gateway.Images{N: 1, Size: up.Value("size"), Quality: up.Value("quality")}
	if v := up.Value("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > llm.LimitImages {
			s.writeError(w, r, invalid("n", "n must be between 1 and %d", llm.LimitImages))
			return
		}
		asked.N = int64(n)
	}
	switch {
	case up.Value("prompt") == "":
		s.writeError(w, r, invalid("prompt", "prompt is required"))
		return
	case len(up.Files) == 0:
		s.writeError(w, r, invalid("image", "an image file is required"))
		return
	}
	if !s.admit(w, r, up.Value("model")) {
		return
	}
	resp, out, err := s.Gateway.ImageEdit(r.Context(), call(r), up, asked)
	s.deliver(w, r, out, err, func() { writeJSON(w, http.StatusOK, resp) })
}

// Bounds on a form's text fields, which are held in memory (its files are not).
const (
	maxFormFieldBytes = 64 << 10
	maxFormParts      = 1000
)

// readUpload reads a multipart form within the body limit: its text fields
// into memory, its files into one spool file (unlinked at once, so nothing
// is left behind whatever happens), so the upload is never held whole in
// memory and every attempt can send it again. done closes the spool.
func (s *Server) readUpload(r *http.Request) (up *provider.Upload, done func(), err error) {
	mt, params, perr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if perr != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_content_type",
			Message: "this endpoint takes multipart/form-data"}
	}
	tooBig := &provider.Error{Kind: provider.KindTooLarge, Code: "request_too_large",
		Message: fmt.Sprintf("request body is over the limit of %d bytes", s.BodyLimit)}
	if r.ContentLength > s.BodyLimit {
		return nil, nil, tooBig
	}
	body := &limitedBody{r: r.Body, left: s.BodyLimit}
	spool, err := os.CreateTemp("", "tidegate-upload-*")
	if err != nil {
		// The cause (a read-only or missing temp dir: TMPDIR, or /tmp
		// under readOnlyRootFilesystem) is the operator's to see, not the client's.
		s.Logger.LogAttrs(r.Context(), slog.LevelError, "cannot spool the upload: is the temp dir writable?",
			slog.String(attrRequestID, requestIDFrom(r)), slog.String("dir", os.TempDir()), slog.String("error", err.Error()))
		return nil, nil, &provider.Error{Kind: provider.KindInternal, Message: "cannot spool the upload", Err: err}
	}
	_ = os.Remove(spool.Name())
	done = func() { _ = spool.Close() }
	defer func() {
		if err != nil {
			done()
		}
	}()
	up = &provider.Upload{}
	mr := multipart.NewReader(body, params["boundary"])
	var offset int64
	for parts := 0; ; parts++ {
		part, err := mr.NextRawPart()
		switch {
		case errors.Is(err, io.EOF):
			return up, done, nil
		case body.over:
			return nil, nil, tooBig
		case err != nil:
			return nil, nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_form", Message: "malformed multipart form"}
		case parts >= maxFormParts:
			return nil, nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_form",
				Message: fmt.Sprintf("at most %d form parts", maxFormParts)}
		}
		name := part.FormName()
		if part.FileName() == "" {
			v, err := io.ReadAll(io.LimitReader(part, maxFormFieldBytes+1))
			switch {
			case body.over:
				return nil, nil, tooBig
			case err != nil:
				return nil, nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "body_read_error", Message: "could not read the request body"}
			case len(v) > maxFormFieldBytes:
				return nil, nil, invalid(name, "field %s is over %d bytes", name, maxFormFieldBytes)
			}
			up.Fields = append(up.Fields, provider.FormField{Name: name, Value: string(v)})
			continue
		}
		n, err := io.Copy(spool, part)
		switch {
		case body.over:
			return nil, nil, tooBig
		case err != nil:
			return nil, nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "body_read_error", Message: "could not read the request body"}
		}
		up.Files = append(up.Files, provider.FormFile{Field: name, Filename: part.FileName(),
			ContentType: part.Header.Get("Content-Type"), Content: spool, Offset: offset, Size: n})
		offset += n
	}
}

// limitedBody reads at most left bytes; over reports a body past them.
type limitedBody struct {
	r    io.Reader
	left int64
	over bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the limit: the body may end here, or go on past it.
		var one [1]byte
		if n, err := b.r.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		b.over = true
		return 0, errors.New("body over the limit")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
