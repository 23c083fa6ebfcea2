package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// sseWriter writes server-sent events, flushing each at once, with a fresh
// write deadline per event: a long stream never meets a global timeout, and
// a client that stops reading is dropped after WriteTimeout.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	started bool
	// hold defers the flush while the next chunk is already in memory: a
	// burst goes out in one write, and no token ever waits for a later one.
	hold bool
	// unflushed: something was written under hold and not flushed yet.
	unflushed bool
	// deadlineSet is when the write deadline was last moved.
	deadlineSet time.Time
}

func (s *Server) newSSE(w http.ResponseWriter) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.WriteTimeout}
}

func (s *Server) setWriteDeadline(w http.ResponseWriter) {
	if s.WriteTimeout > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.WriteTimeout))
	}
}

func (sw *sseWriter) begin() {
	if sw.started {
		return
	}
	sw.started = true
	h := sw.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer a stream
	sw.w.WriteHeader(http.StatusOK)
}

func (sw *sseWriter) raw(b []byte) error {
	sw.begin()
	if sw.timeout > 0 {
		// Moving the deadline re-arms a runtime timer: do it when an eighth
		// of the timeout has passed, not per event, so every write still
		// has at least 7/8 of WriteTimeout.
		if now := time.Now(); now.Sub(sw.deadlineSet) > sw.timeout/8 {
			_ = sw.rc.SetWriteDeadline(now.Add(sw.timeout))
			sw.deadlineSet = now
		}
	}
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	if sw.hold {
		sw.unflushed = true
		return nil
	}
	sw.unflushed = false
	return sw.rc.Flush()
}

// data writes one "data:" event.
func (sw *sseWriter) data(v any) error {
	return sw.event("", v)
}

// eventBufs frame events: a buffer is held for one event, not for a
// stream's life (1,000 open streams would keep 1,000 of them).
var eventBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// event writes a named event (Anthropic's style) or a data-only one.
func (sw *sseWriter) event(name string, v any) error {
	var b []byte
	var err error
	if c, ok := v.(*llm.ChatChunk); ok {
		b, err = c.Encoded()
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	buf := eventBufs.Get().(*bytes.Buffer)
	buf.Reset()
	if name != "" {
		buf.WriteString("event: ")
		buf.WriteString(name)
		buf.WriteByte('\n')
	}
	buf.WriteString("data: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	err = sw.raw(buf.Bytes())
	if buf.Cap() <= 64<<10 { // an outsized event's buffer is left to the GC
		eventBufs.Put(buf)
	}
	return err
}

func (sw *sseWriter) flush() error {
	sw.begin()
	sw.unflushed = false
	return sw.rc.Flush()
}

// chunkStream is a gateway stream as the relay sees it.
type chunkStream interface {
	Next() bool
	Chunk() *llm.ChatChunk
	Buffered() bool
	Err() error
}

// sentStream is a stream that bills a crash by what reached the client
// (gateway.Stream): it is told after each write that went out.
type sentStream interface{ Sent() }

// pump relays a stream's chunks through emit, which writes zero or more
// events for each. A flush is held while the next chunk is already in
// memory, so a burst goes out in one write and no chunk waits for a later
// one. It returns false when the client went away, and the stream's error
// (logged) when it broke past the commit point: the caller ends the stream
// in its route's shape.
func (s *Server) pump(r *http.Request, sw *sseWriter, stream chunkStream, emit func(*llm.ChatChunk) error) (*provider.Error, bool) {
	for stream.Next() {
		sw.hold = stream.Buffered()
		if err := emit(stream.Chunk()); err != nil {
			return nil, false // closing the stream cancels the upstream
		}
		if !sw.hold && sw.unflushed {
			if err := sw.flush(); err != nil {
				return nil, false
			}
		}
		if !sw.hold {
			if s, ok := stream.(sentStream); ok {
				s.Sent()
			}
		}
	}
	sw.hold = false
	if err := stream.Err(); err != nil {
		e := provider.AsError(err)
		s.logStreamError(r, e)
		return e, true
	}
	return nil, true
}
