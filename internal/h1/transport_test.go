package h1_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/tidegate/tidegate/internal/h1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connCounter counts a server's connections: opened, and open now.
type connCounter struct {
	mu     sync.Mutex
	opened int
	open   map[net.Conn]bool
}

func (c *connCounter) hook(nc net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = map[net.Conn]bool{}
	}
	switch s {
	case http.StateNew:
		c.opened++
		c.open[nc] = true
	case http.StateClosed, http.StateHijacked:
		delete(c.open, nc)
	}
}

func (c *connCounter) counts() (opened, open int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened, len(c.open)
}

func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *connCounter) {
	t.Helper()
	cc := &connCounter{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cc.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cc
}

func client(t *testing.T, tr *h1.Transport) *http.Client {
	t.Helper()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func post(t *testing.T, c *http.Client, ctx context.Context, u, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(req)
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
}

// eventually waits for cond, which the server side reaches on its own time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReusesOneConnection(t *testing.T) {
	srv, cc := server(t, echo)
	c := client(t, &h1.Transport{})
	var reused []bool
	for i := range 3 {
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = append(reused, info.Reused) },
		})
		resp, err := post(t, c, ctx, srv.URL+"/v1/x", fmt.Sprint("body", i))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != fmt.Sprintf("POST /v1/x body%d", i) {
			t.Fatalf("answer %q, %v", b, err)
		}
	}
	if diff := cmp.Diff([]bool{false, true, true}, reused); diff != "" {
		t.Errorf("GotConn.Reused (-want +got):\n%s", diff)
	}
	if opened, _ := cc.counts(); opened != 1 {
		t.Errorf("server saw %d connections, want 1", opened)
	}
}

// The point of the package: an open stream costs no goroutine of its own
// on the client side (net/http's Transport keeps two per connection).
func TestOpenStreamsCostNoGoroutines(t *testing.T) {
	release := make(chan struct{})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("data: first\n\n"))
		w.(http.Flusher).Flush()
		<-release
	})
	defer close(release)
	c := client(t, &h1.Transport{MaxIdlePerHost: 64})
	before := runtime.NumGoroutine()
	const streams = 40
	var bodies []io.ReadCloser
	for range streams {
		resp, err := post(t, c, context.Background(), srv.URL, "")
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: first\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		bodies = append(bodies, resp.Body)
	}
	// The server holds two goroutines per connection (its handler and the
	// connection's background read); anything above is the client's.
	added := runtime.NumGoroutine() - before
	if added > 2*streams+4 {
		t.Errorf("%d goroutines for %d open streams: more than the server's 2 each", added, streams)
	}
	for _, b := range bodies {
		b.Close()
	}
}

func TestServerClosedIdleConnectionIsNotUsed(t *testing.T) {
	srv, cc := server(t, echo)
	c := client(t, &h1.Transport{})
	for i := range 3 {
		resp, err := post(t, c, context.Background(), srv.URL, "x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		// The server drops every idle connection; the kept one must be
		// seen as closed, not written to.
		srv.CloseClientConnections()
		eventually(t, "server closed its connections", func() bool { _, open := cc.counts(); return open == 0 })
	}
	if opened, _ := cc.counts(); opened != 3 {
		t.Errorf("server saw %d connections, want 3 (one per request)", opened)
	}
}

func TestUnaskedBytesRetireAnIdleConnection(t *testing.T) {
	// A raw server that answers, then (idle) writes a 408 as some servers
	// do before closing: the connection must not be reused for a request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	unasked := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			n := accepted.Add(1)
			br := bufio.NewReader(nc)
			req, err := http.ReadRequest(br)
			if err != nil {
				nc.Close()
				continue
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			if n == 1 {
				io.WriteString(nc, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
				close(unasked) // on loopback, in the client's socket once written
			}
			defer nc.Close()
		}
	}()
	c := client(t, &h1.Transport{})
	for i := range 2 {
		resp, err := post(t, c, context.Background(), "http://"+ln.Addr().String(), "x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		if i == 0 {
			<-unasked
		}
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	ln.Close()
	c.CloseIdleConnections()
	wg.Wait()
}

func TestEarlyCloseCutsTheConnection(t *testing.T) {
	finished := make(chan struct{})
	srv, cc := server(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(finished)
		for {
			if _, err := w.Write([]byte("data: x\n\n")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	c := client(t, &h1.Transport{})
	resp, err := post(t, c, context.Background(), srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp.Body.Close() // must not drain an endless stream
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	<-finished
	eventually(t, "server saw the connection closed", func() bool { _, open := cc.counts(); return open == 0 })
	if _, err := resp.Body.Read(buf); !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Errorf("read after close: %v", err)
	}
}

func TestCloseWhileReading(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		<-release
	})
	c := client(t, &h1.Transport{})
	resp, err := post(t, c, context.Background(), srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	resp.Body.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read on a closed stream returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}
}

func TestContextEndsTheExchange(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/head" {
			<-release
			return
		}
		w.Write([]byte("data: x\n\n"))
		w.(http.Flusher).Flush()
		<-release
	})
	c := client(t, &h1.Transport{})

	t.Run("waiting for the head", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := post(t, c, ctx, srv.URL+"/head", "")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
	t.Run("reading the body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := post(t, c, ctx, srv.URL+"/body", "")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err = io.ReadAll(br)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := post(t, c, ctx, srv.URL+"/head", "")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
			return
		}
		w.(http.Flusher).Flush() // the head at once, the body later
		time.Sleep(600 * time.Millisecond)
		w.Write([]byte("late body"))
	})
	c := client(t, &h1.Transport{ResponseHeaderTimeout: 300 * time.Millisecond})
	_, err := post(t, c, context.Background(), srv.URL+"/slow", "")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v, want a timeout", err)
	}
	// The bound is on the head only: a body slower than it still arrives.
	resp, err := post(t, c, context.Background(), srv.URL+"/fast-head", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "late body" {
		t.Errorf("body %q, %v", b, err)
	}
}

func TestHeadSizeBound(t *testing.T) {
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("pads"))
		for i := range n {
			w.Header().Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("a", 1000))
		}
	})
	c := client(t, &h1.Transport{MaxResponseHeaderBytes: 16 << 10})
	resp, err := post(t, c, context.Background(), srv.URL+"?pads=12", "")
	if err != nil {
		t.Fatalf("a 12 KB head under a 16 KiB bound: %v", err)
	}
	resp.Body.Close()
	if resp, err := post(t, c, context.Background(), srv.URL+"?pads=64", ""); err == nil {
		resp.Body.Close()
		t.Fatal("a 64 KB head passed a 16 KiB bound")
	}
}

func TestInformationalAnswersAreSkipped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(nc, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal")
	}()
	var got1xx []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { got1xx = append(got1xx, code); return nil },
	})
	c := client(t, &h1.Transport{})
	resp, err := post(t, c, ctx, "http://"+ln.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "final" {
		t.Errorf("answer %d %q", resp.StatusCode, b)
	}
	if diff := cmp.Diff([]int{103}, got1xx); diff != "" {
		t.Errorf("1xx answers (-want +got):\n%s", diff)
	}
}

func TestTraceHooks(t *testing.T) {
	srv, _ := server(t, echo)
	c := client(t, &h1.Transport{})
	var mu sync.Mutex
	var events []string
	note := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		ConnectStart:         func(string, string) { note("connect start") },
		ConnectDone:          func(string, string, error) { note("connect done") },
		GotConn:              func(httptrace.GotConnInfo) { note("got conn") },
		WroteRequest:         func(httptrace.WroteRequestInfo) { note("wrote request") },
		GotFirstResponseByte: func() { note("first byte") },
	})
	resp, err := post(t, c, ctx, srv.URL, "x")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	want := []string{"connect start", "connect done", "got conn", "wrote request", "first byte"}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("trace events (-want +got):\n%s", diff)
	}
}

func TestOthersGoToTheFallback(t *testing.T) {
	var fellBack []string
	fallback := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		fellBack = append(fellBack, req.URL.String())
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
	})
	srv, cc := server(t, echo)
	proxied := "http://proxied.invalid/x"
	c := client(t, &h1.Transport{Fallback: fallback, Proxy: func(r *http.Request) (*url.URL, error) {
		if r.URL.String() == proxied {
			return url.Parse("http://proxy.invalid:3128")
		}
		return nil, nil
	}})
	for _, u := range []string{"https://api.example.invalid/v1", proxied, srv.URL + "/direct"} {
		resp, err := post(t, c, context.Background(), u, "")
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if diff := cmp.Diff([]string{"https://api.example.invalid/v1", proxied}, fellBack); diff != "" {
		t.Errorf("fallback got (-want +got):\n%s", diff)
	}
	if opened, _ := cc.counts(); opened != 1 {
		t.Errorf("the plain-http request did not reach the server directly (%d connections)", opened)
	}
}

func TestConnectionCloseAndIdleTimeout(t *testing.T) {
	srv, cc := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "ok")
	})
	c := client(t, &h1.Transport{IdleTimeout: 50 * time.Millisecond})
	get := func(path string) {
		resp, err := post(t, c, context.Background(), srv.URL+path, "")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	get("/close")
	get("/keep")
	if opened, _ := cc.counts(); opened != 2 {
		t.Fatalf("%d connections after a Connection: close answer, want 2", opened)
	}
	// The kept one is closed once idle past the timeout, with no request.
	eventually(t, "idle connection closed", func() bool { _, open := cc.counts(); return open == 0 })
}

func TestConcurrentStreams(t *testing.T) {
	srv, cc := server(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 5 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(time.Millisecond)
		}
	})
	c := client(t, &h1.Transport{MaxIdlePerHost: 16})
	var wg sync.WaitGroup
	errs := make(chan error, 16*10)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				resp, err := post(t, c, context.Background(), srv.URL, "")
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || strings.Count(string(b), "data:") != 5 {
					errs <- fmt.Errorf("stream %q, %v", b, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if opened, _ := cc.counts(); opened > 16 {
		t.Errorf("%d connections for 16 clients in turn: kept ones were not reused", opened)
	}
}

func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := client(t, &h1.Transport{})
	_, err = post(t, c, context.Background(), "http://"+addr, "x")
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Errorf("dial to a closed port: %v, want a dial error", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// An open stream must not keep the prompt it was asked with alive.
func TestAnswerDoesNotKeepThePrompt(t *testing.T) {
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "data: x\n\n")
	})
	c := client(t, &h1.Transport{})
	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(strings.Repeat("p", 64<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Request == nil || resp.Request.URL.String() != srv.URL {
		t.Fatalf("answer's request: %+v", resp.Request)
	}
	if resp.Request.Body != nil || resp.Request.GetBody != nil {
		t.Error("the answer still holds the request's body")
	}
}

// A body too large to sit in the socket's buffers goes to the fallback,
// which reads an early answer while it writes: the server's 413 arrives as
// a 413, not as a broken pipe.
func TestLargeBodyEarlyAnswer(t *testing.T) {
	srv, cc := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})
	fallback := &http.Transport{}
	defer fallback.CloseIdleConnections()
	c := client(t, &h1.Transport{Fallback: fallback})
	resp, err := post(t, c, context.Background(), srv.URL, strings.Repeat("x", 8<<20))
	if err != nil {
		t.Fatalf("8 MB body answered early: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
	// A small body stays on h1 (no fallback set here would fail it).
	small := client(t, &h1.Transport{})
	resp, err = post(t, small, context.Background(), srv.URL, "small")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if opened, _ := cc.counts(); opened != 2 {
		t.Errorf("%d connections, want 2", opened)
	}
}

func TestIdleConnectionsAgeOut(t *testing.T) {
	srv, cc := server(t, echo)
	// The sweeper runs every timeout/4; the age check must hold between runs too.
	c := client(t, &h1.Transport{IdleTimeout: 80 * time.Millisecond})
	for range 2 {
		resp, err := post(t, c, context.Background(), srv.URL, "x")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		time.Sleep(120 * time.Millisecond)
	}
	if opened, _ := cc.counts(); opened != 2 {
		t.Errorf("%d connections, want 2: a connection idle past the timeout was used", opened)
	}
}

// flakyConn fails its first write after being kept, as a connection the
// server closed would.
type flakyConn struct {
	net.Conn
	writes atomic.Int32
	failAt int32
}

func (f *flakyConn) Write(p []byte) (int, error) {
	if f.writes.Add(1) == f.failAt {
		return 0, errors.New("write: broken pipe")
	}
	return f.Conn.Write(p)
}

func TestFailedWriteOnAKeptConnectionGoesAgain(t *testing.T) {
	srv, cc := server(t, echo)
	var dials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if dials.Add(1) == 1 {
			return &flakyConn{Conn: nc, failAt: 2}, nil // the second request's write fails
		}
		return nc, nil
	}
	c := client(t, &h1.Transport{Dial: dial})
	for i := range 2 {
		resp, err := post(t, c, context.Background(), srv.URL+"/again", fmt.Sprint("body", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST /again body%d", i); string(b) != want {
			t.Errorf("request %d: %q, want %q", i, b, want)
		}
	}
	if opened, _ := cc.counts(); opened != 2 {
		t.Errorf("%d connections, want 2 (the kept one failed, a new one carried the request)", opened)
	}

	// A body that cannot be had again is not sent again.
	dials.Store(0)
	c2 := client(t, &h1.Transport{Dial: dial})
	resp, err := post(t, c2, context.Background(), srv.URL, "first")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("once")))
	req.ContentLength = 4
	if resp, err := c2.Do(req); err == nil {
		resp.Body.Close()
		t.Error("a body without GetBody was sent again")
	}
}

// A relay closes a stream at [DONE], just before the body's last chunk: the
// connection is kept all the same.
func TestClosedAtDoneKeepsTheConnection(t *testing.T) {
	srv, cc := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: a\n\ndata: [DONE]\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(5 * time.Millisecond) // the last chunk comes a beat later
	})
	tr := &h1.Transport{}
	c := client(t, tr)
	for i := range 3 {
		resp, err := post(t, c, context.Background(), srv.URL, "")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if line == "data: [DONE]\n" {
				break
			}
		}
		resp.Body.Close()
		eventually(t, "the connection kept once its end is read", func() bool { return tr.IdleConns() == 1 })
	}
	if opened, _ := cc.counts(); opened != 1 {
		t.Errorf("%d connections for 3 streams closed at [DONE], want 1", opened)
	}
}

func TestBodilessAnswersKeepTheConnection(t *testing.T) {
	srv, cc := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			io.WriteString(w, "head has none")
		}
	})
	c := client(t, &h1.Transport{})
	for _, tc := range []struct{ method, path string }{{"POST", "/204"}, {"GET", "/304"}, {"HEAD", "/"}, {"POST", "/204"}} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if b, _ := io.ReadAll(resp.Body); len(b) != 0 {
			t.Errorf("%s %s: body %q", tc.method, tc.path, b)
		}
		resp.Body.Close()
	}
	if opened, _ := cc.counts(); opened != 1 {
		t.Errorf("%d connections, want 1", opened)
	}
}
