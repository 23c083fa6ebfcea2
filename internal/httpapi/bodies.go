package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/timing"
)

// requestBody follows one request's body: whether it was read to its end
// (else the connection must not be reused: net/http would drain what is
// left, however slowly it comes, before answering) and the body memory it
// holds.
type requestBody struct {
	io.ReadCloser
	done     atomic.Bool // read to EOF
	rc       *http.ResponseController
	deadline time.Time // zero: none
	pool     *bodyMemory
	mu       sync.Mutex
	reserve  int64 // bytes of pool held
	size     int64 // bytes of body read
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done.Swap(true) && !b.deadline.IsZero() {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// lingerAfterRefusal is how long a connection answered before its body
// ended still takes (and discards) what the client sends, so that the
// client reads the answer before the close (closing on unread data sends
// a reset that can destroy the answer in flight).
const lingerAfterRefusal = 500 * time.Millisecond

// answeredEarly readies the connection to close: net/http would otherwise
// drain the rest of the body, however slowly it comes, before answering
// or after.
func (b *requestBody) answeredEarly(h http.Header) {
	h.Set("Connection", "close")
	linger := time.Now().Add(lingerAfterRefusal)
	if b.deadline.IsZero() || linger.Before(b.deadline) {
		_ = b.rc.SetReadDeadline(linger)
	}
}

// BodyCopies is what a body costs while it is read, decoded and sent
// upstream, in multiples of its size: the bytes read, the decoded request
// (strings and kept raw fields) and the encoding for the upstream live
// together, and encoding/json adds a copy of its own. Measured: 30 MiB
// bodies raised the process's memory by about 6.5x each, part of it
// garbage not yet collected.
const BodyCopies = config.BodyCopies

// hold grows the body's share of the pool to BodyCopies times n bytes of
// body; false: the pool is full.
func (b *requestBody) hold(n int64) bool {
	n *= BodyCopies
	b.mu.Lock()
	defer b.mu.Unlock()
	if n <= b.reserve {
		return true
	}
	if !b.pool.take(n - b.reserve) {
		return false
	}
	b.reserve = n
	return true
}

// answered shrinks the hold to the body's own size once the answer starts:
// the copies made to decode and send it are gone, the decoded request
// stays (a stream keeps it until it ends).
func (b *requestBody) answered() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reserve > b.size {
		b.pool.give(b.reserve - b.size)
		b.reserve = b.size
	}
}

// release gives the body's share back, once the request is over (its
// decoded forms live as long as the handler).
func (b *requestBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pool.give(b.reserve)
	b.reserve = 0
}

// bodyMemory is a non-blocking semaphore on the bytes of request bodies held
// at once. A nil pool, or one with no limit, admits everything.
type bodyMemory struct {
	limit int64
	used  atomic.Int64
}

func (m *bodyMemory) take(n int64) bool {
	if m == nil {
		return true
	}
	for {
		u := m.used.Load()
		if m.limit > 0 && u+n > m.limit {
			return false
		}
		if m.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (m *bodyMemory) give(n int64) {
	if m != nil {
		m.used.Add(-n)
	}
}

// BodyMemoryInUse is how many bytes of request bodies are held now.
func (s *Server) BodyMemoryInUse() int64 { return s.bodies.used.Load() }

// guardBody bounds a request's body from the moment its head arrived: the
// whole body must come within BodyReadTimeout, whichever route it is for
// and whether or not the route reads it. The deadline is lifted once the
// body ends, so a long answer is not cut by it.
func (s *Server) guardBody(w http.ResponseWriter, r *http.Request) *requestBody {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b := &requestBody{ReadCloser: r.Body, pool: &s.bodies, rc: http.NewResponseController(w)}
	if s.BodyReadTimeout > 0 {
		b.deadline = time.Now().Add(s.BodyReadTimeout)
		_ = b.rc.SetReadDeadline(b.deadline)
	}
	return b
}

// chunk is the step by which a body of unknown length grows its hold.
const chunk = 64 << 10

// readBody reads a request body within the size limit, the body memory and
// its deadline, and rejects bodies that are not UTF-8.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	tooBig := &provider.Error{Kind: provider.KindTooLarge, Code: "request_too_large",
		Message: fmt.Sprintf("request body is over the limit of %d bytes", s.BodyLimit)}
	if r.ContentLength > s.BodyLimit {
		return nil, tooBig // refused before a byte of it is read
	}
	b, _ := r.Body.(*requestBody)
	if b == nil { // no body, or a handler called outside the middleware
		b = &requestBody{ReadCloser: r.Body}
	}
	started := time.Now()
	body, err := s.readAll(b, r.ContentLength)
	if d := time.Since(started); d >= clientBlocked {
		timing.From(r.Context()).ClientWait(d) // a slow upload is the client's time
	}
	switch {
	case errors.Is(err, errBodyMemory):
		return nil, &provider.Error{Kind: provider.KindOverloaded, Code: "server_busy", RetryAfter: time.Second,
			Message: "the server holds too many request bodies at once; retry shortly"}
	case errors.Is(err, errTooBig):
		return nil, tooBig
	case err != nil:
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "body_read_error", Message: "could not read the request body"}
	case len(body) == 0:
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "empty_body", Message: "request body is empty"}
	case !utf8.Valid(body):
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_encoding", Message: "request body is not valid UTF-8"}
	}
	return body, nil
}

var (
	errBodyMemory = errors.New("body memory exhausted")
	errTooBig     = errors.New("body over the limit")
)

// readAll reads a body into one buffer sized by its Content-Length, held
// against the body memory before it is allocated; a body of unknown length
// holds more as it grows. One allocation of the body's size, no doubling
// copies (io.ReadAll's growth costs about twice the body).
func (s *Server) readAll(b *requestBody, length int64) ([]byte, error) {
	if length >= 0 {
		if !b.hold(length) {
			return nil, errBodyMemory
		}
		buf := make([]byte, length)
		if _, err := io.ReadFull(b, buf); err != nil {
			return nil, err
		}
		b.size = length
		// Reach EOF, so the deadline is lifted and the connection reusable.
		if _, err := b.Read(make([]byte, 1)); err != io.EOF {
			return nil, err // net/http stops a body at its Content-Length: only an error lands here
		}
		return buf, nil
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			size := min(max(2*int64(cap(buf)), chunk), s.BodyLimit+1)
			if !b.hold(size) {
				return nil, errBodyMemory
			}
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
		}
		n, err := b.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > s.BodyLimit {
			return nil, errTooBig
		}
		if err == io.EOF {
			b.size = int64(len(buf))
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
