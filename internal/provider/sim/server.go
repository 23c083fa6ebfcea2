package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// Handler serves the fleet as an OpenAI-compatible HTTP upstream. Its faults
// are real wire faults: error statuses, a cut connection, a stalled or
// malformed stream, a server that never answers.
func (f *Fleet) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", f.serveChat)
	mux.HandleFunc("POST /v1/embeddings", f.serveEmbeddings)
	mux.HandleFunc("POST /v1/images/generations", f.serveImages)
	mux.HandleFunc("PUT /sim/models/{name}", f.serveSetModel)
	mux.HandleFunc("GET /metrics", f.serveMetrics)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		list := llm.ModelList{Object: "list"}
		for _, n := range f.Models() {
			list.Data = append(list.Data, llm.Model{ID: n, Object: "model", OwnedBy: "tidegate-sim"})
		}
		writeJSON(w, http.StatusOK, list)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	e := provider.AsError(err)
	status := e.Status
	if status == 0 {
		status = e.Kind.Status()
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	code := e.Code
	writeJSON(w, status, llm.ErrorBody{Error: llm.ErrorDetail{Message: e.Message, Type: e.Kind.OpenAIType(), Code: &code}})
}

func (f *Fleet) serveChat(w http.ResponseWriter, r *http.Request) {
	var req llm.ChatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, provider.Errorf(provider.KindInvalidRequest, "invalid_json", "invalid JSON: %v", err))
		return
	}
	began := time.Now()
	m, p, err := f.begin(r.Context(), &req)
	if err != nil {
		if provider.AsError(err).Kind == provider.KindCanceled {
			return
		}
		writeError(w, err)
		return
	}
	// A running slot, taken before prefill; the queue's wait counts in
	// the time to first token.
	release := func() {}
	defer func() { release() }()
	admit := func() bool {
		rel, err := f.admit(r.Context(), m, requestPriority(&req), p.promptTokens)
		if err != nil {
			return false
		}
		release = rel
		return true
	}
	if !req.Stream {
		if !admit() {
			return
		}
		if err := sleep(r.Context(), p.ttft); err != nil {
			return
		}
		resp, err := f.complete(r.Context(), m, p, &req)
		if err != nil {
			if p.fault == FaultCut {
				panic(http.ErrAbortHandler)
			}
			writeError(w, err)
			return
		}
		setProcessing(w, m, began)
		if sleep(r.Context(), m.NetworkDelay) != nil {
			return
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	// By default the head goes out before the first token, like
	// OpenAI-compatible servers; with HeadWithFirstToken it waits for it.
	// Either way the upstream's own time is reported and the network
	// delay comes after it.
	withToken := m.Head == HeadWithFirstToken
	if withToken && (!admit() || sleep(r.Context(), p.ttft) != nil) {
		return
	}
	setProcessing(w, m, began)
	if sleep(r.Context(), m.NetworkDelay) != nil {
		return
	}
	if withToken {
		p.ttft, admit = 0, nil // the slot is taken; else it is taken after the head
	}
	f.serveStream(w, r, &req, p, admit)
}

// setProcessing reports the time the fleet worked on a request so far, in
// milliseconds with a fraction: a head sent at once reports well under one.
func setProcessing(w http.ResponseWriter, m Model, began time.Time) {
	if m.NoProcessingHeader {
		return
	}
	worked := max(time.Since(began), time.Microsecond)
	w.Header().Set("openai-processing-ms", strconv.FormatFloat(float64(worked)/float64(time.Millisecond), 'f', 3, 64))
}

// serveSetModel changes a model while the fleet serves (PUT
// /sim/models/{name}, a YAML or JSON model: {"ttft": "2s", ...}).
func (f *Fleet) serveSetModel(w http.ResponseWriter, r *http.Request) {
	var m Model
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = yaml.Unmarshal(body, &m)
	}
	if err != nil {
		writeError(w, provider.Errorf(provider.KindInvalidRequest, "invalid_model", "invalid model: %v", err))
		return
	}
	if m.Head != "" && m.Head != HeadAtOnce && m.Head != HeadWithFirstToken {
		writeError(w, provider.Errorf(provider.KindInvalidRequest, "invalid_model", "invalid model: head is %q, not %q or %q", m.Head, HeadAtOnce, HeadWithFirstToken))
		return
	}
	m.Name = r.PathValue("name")
	f.Set(m)
	w.WriteHeader(http.StatusNoContent)
}

// serveStream streams the answer; admit, when not nil, takes the running
// slot after the head went out (a queued request has its head already).
func (f *Fleet) serveStream(w http.ResponseWriter, r *http.Request, req *llm.ChatRequest, p plan, admit func() bool) {
	m, _ := f.model(req.Model)
	seq := newChunkSeq(&p, responseID(&p), req.Model, f.now().Unix())
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	if admit != nil && !admit() {
		return
	}
	if sleep(r.Context(), p.ttft) != nil {
		return
	}
	var buf bytes.Buffer
	sent := 0
	for k := 0; k < seq.len(); k++ {
		c := seq.at(k)
		if c.Usage != nil && !req.WantsUsage() {
			continue
		}
		if p.fault != FaultNone && sent >= p.afterChunks {
			switch p.fault {
			case FaultCut:
				panic(http.ErrAbortHandler)
			case FaultStall:
				<-r.Context().Done()
				return
			case FaultMalformed:
				fmt.Fprint(w, "data: {\"choices\": [ {oops\n\n")
				flusher.Flush()
				return
			case FaultErrEvent:
				fmt.Fprint(w, "data: {\"error\":{\"message\":\"simulated error event\",\"type\":\"server_error\",\"code\":null}}\n\n")
				flusher.Flush()
				return
			}
		}
		if c.HasContent() {
			if sent > 0 && sleep(r.Context(), f.decodeInterval(m)) != nil {
				return
			}
			sent++
			f.produced(m.Name, 1)
		}
		buf.Reset()
		buf.WriteString("data: ")
		b, _ := json.Marshal(c)
		buf.Write(b)
		buf.WriteString("\n\n")
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	_, _ = w.Write([]byte("data: [DONE]\n\n"))
}

func (f *Fleet) serveEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req llm.EmbeddingRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, provider.Errorf(provider.KindInvalidRequest, "invalid_json", "invalid JSON: %v", err))
		return
	}
	resp, err := f.Embeddings(r.Context(), &req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (f *Fleet) serveImages(w http.ResponseWriter, r *http.Request) {
	var req llm.ImageRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, provider.Errorf(provider.KindInvalidRequest, "invalid_json", "invalid JSON: %v", err))
		return
	}
	resp, err := f.ImageGeneration(r.Context(), &req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// tinyPNG draws an 8×8 image whose colour follows the prompt.
func tinyPNG(prompt string, i int) []byte {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%s", i, prompt)
	v := h.Sum32()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	c := color.RGBA{R: uint8(v), G: uint8(v >> 8), B: uint8(v >> 16), A: 255}
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}
