// Package h1 runs HTTP/1.1 exchanges with cleartext upstreams (self-hosted
// model servers: vLLM, SGLang, TGI, llama.cpp, Ollama, the sim) in the
// caller's goroutine.
//
// net/http's Transport gives every HTTP/1.1 connection a read loop and a
// write loop goroutine, and hands each request between them. To an upstream
// that streams one answer per connection, that is two goroutines, their
// stacks and their buffers for every open stream, and four goroutine
// hand-offs for every request. Here the goroutine that asks writes the
// request and reads the answer itself, with net/http's own framing
// (Request.Write and ReadResponse): an open stream costs its connection and a
// 1 KiB read buffer. Anything else (TLS, where HTTP/2 multiplexes streams
// anyway; a proxy) goes to the fallback transport.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Transport is an http.RoundTripper for http:// URLs; see the package doc.
type Transport struct {
	// Fallback carries every request this transport does not: https, proxied.
	Fallback http.RoundTripper
	// Proxy, when set, is asked first; a request it proxies goes to Fallback.
	Proxy func(*http.Request) (*url.URL, error)
	// Dial opens a connection; the request's context carries httptrace's
	// DNS and connect hooks into it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ResponseHeaderTimeout bounds the wait for an answer's head once the
	// request is written; zero waits as long as the context allows.
	ResponseHeaderTimeout time.Duration
	// MaxIdlePerHost caps the connections kept for reuse per host (default 2).
	MaxIdlePerHost int
	// IdleTimeout closes a connection idle this long (default 4 s: below the
	// 5 s keep-alive of uvicorn, which vLLM and SGLang serve on, so a server
	// closing an idle connection rarely races a request sent on it).
	IdleTimeout time.Duration
	// MaxResponseHeaderBytes bounds an answer's head (default 1 MiB).
	MaxResponseHeaderBytes int64
	// ReadBufferSize is each connection's read buffer (default 1 KiB: a few
	// stream chunks; a larger read bypasses it).
	ReadBufferSize int

	mu    sync.Mutex
	idle  map[string][]*conn // per host, oldest first
	sweep *time.Timer
}

func (t *Transport) maxIdle() int {
	if t.MaxIdlePerHost > 0 {
		return t.MaxIdlePerHost
	}
	return 2
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return 4 * time.Second
}

func (t *Transport) maxHeader() int64 {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return 1 << 20
}

// writers are the buffers requests are written through: a request is written
// once, so its buffer is the pool's again as soon as it is flushed.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 1<<10) }}

// maxInlineBody is the largest request body written before the answer is
// read: up to it, the body fits in the kernel's socket buffers even when the
// server answers early (a 401, a 413) without reading it. A larger body, or
// one of unknown length, goes to the fallback, which writes and reads at once.
const maxInlineBody = 64 << 10

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" || req.Method == http.MethodConnect ||
		req.ContentLength > maxInlineBody || req.ContentLength < 0 || req.Header.Get("Expect") != "" {
		return t.fallback(req)
	}
	if req.ContentLength == 0 && req.Body != nil && req.Body != http.NoBody {
		return t.fallback(req) // a body of unknown length (ContentLength 0 with a body)
	}
	if t.Proxy != nil {
		if u, err := t.Proxy(req); err != nil || u != nil {
			return t.fallback(req)
		}
	}
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	addr := hostPort(req.URL)
	var c *conn
	for attempt := 0; ; attempt++ {
		var reused bool
		var err error
		c, reused, err = t.get(ctx, addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		if trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: reused, WasIdle: reused})
		}
		c.watch(ctx)
		err = c.write(req)
		if err == nil {
			break
		}
		err = c.fail(ctx, err)
		// A server never acts on a request it did not receive whole: one
		// whose write failed on a kept connection (closed by the server
		// since) goes again, once, on a new one, if its body can be had again.
		if !reused || attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
		again, ok := rewind(req)
		if !ok {
			return nil, err
		}
		req = again
	}

	if t.ResponseHeaderTimeout > 0 {
		c.readDeadline(time.Now().Add(t.ResponseHeaderTimeout))
	}
	c.limit.n = t.maxHeader()
	resp, err := c.readHead(req, trace)
	if err != nil {
		return nil, c.fail(ctx, err)
	}
	c.limit.n = -1
	if t.ResponseHeaderTimeout > 0 {
		c.readDeadline(time.Time{})
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		return nil, c.fail(ctx, errors.New("upstream switched protocols, which tidegate does not follow"))
	}
	// The answer keeps the request, as net/http documents, without its body:
	// a stream holds its answer for its whole life, and the prompt it was
	// asked with (kilobytes to megabytes) need not live as long.
	sent := *req
	sent.Body, sent.GetBody = nil, nil
	resp.Request = &sent
	keep := !resp.Close && !req.Close && !strings.EqualFold(req.Header.Get("Connection"), "close")
	if resp.Body == http.NoBody {
		c.done(t, addr, keep)
		return resp, nil
	}
	resp.Body = &body{inner: resp.Body, c: c, t: t, addr: addr, keep: keep, ctx: ctx}
	return resp, nil
}

// write sends the request through a pooled buffer.
func (c *conn) write(req *http.Request) error {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	err := req.Write(bw) // closes the request's body; calls trace.WroteRequest, as net/http's Transport does
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	return err
}

// rewind is the request again, with a fresh body, when it can be had.
func rewind(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	again := *req
	again.Body = b
	return &again, true
}

func (t *Transport) fallback(req *http.Request) (*http.Response, error) {
	if t.Fallback == nil {
		closeBody(req)
		return nil, fmt.Errorf("h1: no transport for %s", req.URL.Redacted())
	}
	return t.Fallback.RoundTrip(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hostPort is the address to dial for an http URL.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// readHead reads the answer's head, skipping informational (1xx) answers.
func (c *conn) readHead(req *http.Request, trace *httptrace.ClientTrace) (*http.Response, error) {
	if _, err := c.br.Peek(1); err != nil {
		return nil, err
	}
	if trace != nil && trace.GotFirstResponseByte != nil {
		trace.GotFirstResponseByte()
	}
	for informational := 0; ; informational++ {
		if informational > 5 {
			return nil, errors.New("upstream sent too many informational (1xx) answers")
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			if c.limit.n == 0 {
				return nil, errors.New("upstream answer's head is too large")
			}
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// get takes the newest idle connection to addr that is still open, or dials.
func (t *Transport) get(ctx context.Context, addr string) (*conn, bool, error) {
	for {
		c := t.takeIdle(addr)
		if c == nil {
			break
		}
		if c.open() {
			return c, true, nil
		}
		c.nc.Close()
	}
	dial := t.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	c := &conn{nc: nc}
	c.limit.r, c.limit.n = nc, -1
	size := t.ReadBufferSize
	if size <= 0 {
		size = 1 << 10
	}
	c.br = bufio.NewReaderSize(&c.limit, size)
	return c, false, nil
}

func (t *Transport) takeIdle(addr string) *conn {
	t.mu.Lock()
	list := t.idle[addr]
	if len(list) == 0 {
		t.mu.Unlock()
		return nil
	}
	c := list[len(list)-1]
	list[len(list)-1] = nil
	list = list[:len(list)-1]
	var stale []*conn
	if time.Since(c.idleSince) >= t.idleTimeout() {
		// The newest is too old, so are the rest: a server may be closing
		// them as this request would go out.
		stale, c, list = append(list, c), nil, nil
	}
	if len(list) == 0 {
		delete(t.idle, addr)
	} else {
		t.idle[addr] = list
	}
	t.mu.Unlock()
	for _, s := range stale {
		s.nc.Close()
	}
	return c
}

// put keeps a connection for reuse; when the host's share is full, the
// oldest kept one is closed instead.
func (t *Transport) put(addr string, c *conn) {
	t.mu.Lock()
	c.idleSince = time.Now()
	if t.idle == nil {
		t.idle = map[string][]*conn{}
	}
	list := append(t.idle[addr], c)
	var oldest *conn
	if len(list) > t.maxIdle() {
		oldest = list[0]
		list = append(list[:0], list[1:]...)
	}
	t.idle[addr] = list
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout(), t.sweepIdle)
	}
	t.mu.Unlock()
	if oldest != nil {
		oldest.nc.Close()
	}
}

// sweepIdle closes the connections idle past the timeout, and runs again
// while any are kept.
func (t *Transport) sweepIdle() {
	cutoff := time.Now().Add(-t.idleTimeout())
	var stale []*conn
	t.mu.Lock()
	for addr, list := range t.idle {
		n := 0
		for n < len(list) && !list[n].idleSince.After(cutoff) {
			n++
		}
		stale = append(stale, list[:n]...)
		if n == len(list) {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = append(list[:0:0], list[n:]...)
		}
	}
	if len(t.idle) > 0 {
		t.sweep.Reset(t.idleTimeout() / 4)
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, c := range stale {
		c.nc.Close()
	}
}

// CloseIdleConnections closes every connection kept for reuse, here and in
// the fallback.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.nc.Close()
		}
	}
	if f, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// conn is one upstream connection and its read side.
type conn struct {
	nc        net.Conn
	br        *bufio.Reader
	limit     limitedConn
	idleSince time.Time

	// The request's context cancels by moving the deadline into the past;
	// mu keeps a header deadline from moving it back.
	mu        sync.Mutex
	canceled  bool
	stopWatch func() bool
}

// watch ties the connection to the request's context until the exchange ends.
func (c *conn) watch(ctx context.Context) {
	c.mu.Lock()
	c.canceled = false
	c.mu.Unlock()
	c.stopWatch = context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.canceled = true
		c.nc.SetDeadline(time.Unix(1, 0))
		c.mu.Unlock()
	})
}

// unwatch ends the tie; false when the context already cut the connection.
func (c *conn) unwatch() bool {
	if c.stopWatch == nil {
		return true
	}
	stopped := c.stopWatch()
	c.stopWatch = nil
	return stopped
}

func (c *conn) readDeadline(at time.Time) {
	c.mu.Lock()
	if !c.canceled {
		c.nc.SetReadDeadline(at)
	}
	c.mu.Unlock()
}

// fail closes the connection and returns the exchange's error: the
// context's when it ended the exchange.
func (c *conn) fail(ctx context.Context, err error) error {
	c.unwatch()
	c.nc.Close()
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// done ends an exchange whose answer was read whole: the connection is kept
// when both sides allow it and the context never touched it.
func (c *conn) done(t *Transport, addr string, keep bool) {
	if c.unwatch() && keep && c.br.Buffered() == 0 {
		t.put(addr, c)
		return
	}
	c.nc.Close()
}

// limitedConn bounds what an answer's head may read (n ≥ 0); n < 0 is no bound.
type limitedConn struct {
	r io.Reader
	n int64
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// body is an answer's body: read to its end, it gives the connection back.
// Closed before its end (a relay stops at [DONE], a beat before the body's
// last chunk arrives), the rest is read in the background for a moment, so
// the connection is kept when the end comes at once, and cut, never drained
// at length, when it does not (a stream abandoned midway).
type body struct {
	inner io.ReadCloser
	c     *conn
	t     *Transport
	addr  string
	keep  bool
	ctx   context.Context

	mu      sync.Mutex
	state   int  // open, ended (read to its end) or closed
	reading bool // a Read is under way
}

const (
	bodyOpen = iota
	bodyEnded
	bodyClosed
)

// Bounds of the end read after an early Close.
const (
	endWait  = 100 * time.Millisecond
	endBytes = 16 << 10
)

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	switch b.state {
	case bodyEnded:
		b.mu.Unlock()
		return 0, io.EOF
	case bodyClosed:
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.inner.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		if b.state == bodyOpen {
			b.state = bodyEnded
			b.c.done(b.t, b.addr, b.keep)
		}
		return n, io.EOF
	}
	if cerr := b.ctx.Err(); cerr != nil {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	return n, err
}

// Close may be called while a Read waits: closing the connection ends it.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != bodyOpen {
		b.state = bodyClosed
		return nil
	}
	b.state = bodyClosed
	if !b.c.unwatch() || !b.keep || b.reading {
		return b.c.nc.Close()
	}
	go b.readEnd()
	return nil
}

// readEnd reads what is left of a closed body, briefly and boundedly, and
// keeps the connection if that was its end.
func (b *body) readEnd() {
	c := b.c
	c.nc.SetReadDeadline(time.Now().Add(endWait))
	n, err := io.Copy(io.Discard, io.LimitReader(b.inner, endBytes))
	if err != nil || n >= endBytes {
		c.nc.Close()
		return
	}
	c.nc.SetReadDeadline(time.Time{})
	c.done(b.t, b.addr, true)
}
