package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/openai"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/router"
)

// upstreamClients are closed after each test so idle keep-alive connections
// do not count as leaks.
var upstreamClients sync.Map

func openAIClient(baseURL string) *openai.Client {
	h := fleet.HTTPClient(500 * time.Millisecond)
	upstreamClients.Store(h, true)
	return &openai.Client{Name: "up", Preset: provider.Preset{}, BaseURL: baseURL + "/v1", APIKey: "sk-upstream-SECRET", HTTP: h}
}

func closeUpstreamClients() {
	upstreamClients.Range(func(k, _ any) bool {
		k.(*http.Client).CloseIdleConnections()
		return true
	})
}

func newRecordingUpstream(t *testing.T, got *[]byte) *httptest.Server {
	f := sim.New("sim", 1, []sim.Model{{Name: "m", OutputTokens: 4}})
	h := f.Handler()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		*got = b
		mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// connTracker counts an upstream's connections by state, to find leaks.
type connTracker struct {
	mu     sync.Mutex
	states map[net.Conn]http.ConnState
}

func (c *connTracker) hook(conn net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.states == nil {
		c.states = map[net.Conn]http.ConnState{}
	}
	if s == http.StateClosed || s == http.StateHijacked {
		delete(c.states, conn)
		return
	}
	c.states[conn] = s
}

func (c *connTracker) active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.states {
		if s == http.StateActive {
			n++
		}
	}
	return n
}

// simServer serves sim models over HTTP and tracks its connections.
func simServer(t *testing.T, models ...sim.Model) (*httptest.Server, *connTracker) {
	tr := &connTracker{}
	srv := httptest.NewUnstartedServer(sim.New("sim", 1, models).Handler())
	srv.Config.ConnState = tr.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, tr
}

// waitFor polls cond: the server updates connection states asynchronously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrokenUpstream: every way an upstream breaks ends in a clear error in
// the route's shape, and leaves no goroutine or connection behind.
func TestBrokenUpstream(t *testing.T) {
	// Registered first, so it runs last: after every server and client is closed.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		closeUpstreamClients()
		goleak.VerifyNone(t, ignore)
	})

	sims, tracker := simServer(t,
		sim.Model{Name: "ok", OutputTokens: 8},
		sim.Model{Name: "err500", Fault: sim.Fault{Kind: sim.Fault500}},
		sim.Model{Name: "err429", Fault: sim.Fault{Kind: sim.Fault429, RetryAfter: 7 * time.Second}},
		sim.Model{Name: "cut", OutputTokens: 20, Fault: sim.Fault{Kind: sim.FaultCut, AfterChunks: 3}},
		sim.Model{Name: "cut0", OutputTokens: 20, Fault: sim.Fault{Kind: sim.FaultCut}},
		sim.Model{Name: "malformed", OutputTokens: 20, Fault: sim.Fault{Kind: sim.FaultMalformed, AfterChunks: 2}},
		sim.Model{Name: "hang", Fault: sim.Fault{Kind: sim.FaultHang}},
	)
	refused := func() string { // a port nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}()
	up := openAIClient(sims.URL)
	down := openAIClient(refused)
	down.Name = "down"
	srv := newServer(t, map[string]provider.Provider{"up": up, "down": down}, []router.Route{
		{Name: "failover", Targets: []router.Target{{Provider: "down", Model: "ok"}, {Provider: "up", Model: "err500"}, {Provider: "up", Model: "ok"}}},
		{Name: "never-after-start", Targets: []router.Target{{Provider: "up", Model: "cut"}, {Provider: "up", Model: "ok"}}},
	}, nil)
	defer closeUpstreamClients()

	nonStream := []struct {
		model  string
		status int
		typ    string
	}{
		{"down/ok", 502, "upstream_error"},
		{"up/err500", 502, "upstream_error"},
		{"up/err429", 429, "rate_limit_error"},
		{"up/hang", 504, "timeout_error"},
		{"up/cut", 502, "upstream_error"},
	}
	for _, tc := range nonStream {
		t.Run(tc.model, func(t *testing.T) {
			resp := srv.post(t, "/v1/chat/completions", fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, tc.model))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			e := openAIError(t, resp)
			if e.Type != tc.typ || strings.Contains(e.Message, "SECRET") {
				t.Errorf("error = %+v", e)
			}
			if tc.status == 429 && resp.Header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After = %q, want the upstream's 7", resp.Header.Get("Retry-After"))
			}
		})
	}

	t.Run("failover before any byte", func(t *testing.T) {
		for _, stream := range []bool{false, true} {
			resp := srv.post(t, "/v1/chat/completions", fmt.Sprintf(`{"model":"failover","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream))
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Header.Get("x-tidegate-route") != "up/ok" || resp.Header.Get("x-tidegate-attempts") != "3" {
				t.Errorf("stream=%v: status %d route %q attempts %q: %s", stream, resp.StatusCode,
					resp.Header.Get("x-tidegate-route"), resp.Header.Get("x-tidegate-attempts"), b)
			}
		}
	})

	t.Run("stream failing before its first chunk fails over or errors as JSON", func(t *testing.T) {
		resp := srv.post(t, "/v1/chat/completions", `{"model":"up/cut0","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 502 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		openAIError(t, resp)
	})

	for _, model := range []string{"up/cut", "up/malformed", "never-after-start"} {
		t.Run(model+" mid-stream", func(t *testing.T) {
			resp := srv.post(t, "/v1/chat/completions", fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, model))
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			events := sseEvents(t, resp.Body)
			if len(events) < 2 {
				t.Fatalf("events: %v", events)
			}
			last := events[len(events)-1]
			if !strings.HasPrefix(last, `{"error":`) || !strings.Contains(last, `"type":"upstream_error"`) {
				t.Errorf("last event = %s, want an error event", last)
			}
			for _, e := range events {
				if e == "[DONE]" {
					t.Error("a broken stream ended with [DONE]")
				}
			}
			if resp.Header.Get("x-tidegate-attempts") != "1" {
				t.Error("a stream that had started was retried")
			}
		})
	}

	t.Run("anthropic route mid-stream error", func(t *testing.T) {
		resp := srv.post(t, "/v1/messages", `{"model":"up/cut","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		b, _ := io.ReadAll(resp.Body)
		s := string(b)
		if !strings.Contains(s, "event: error") || strings.Contains(s, "message_stop") || !strings.Contains(s, "content_block_delta") {
			t.Errorf("body:\n%s", s)
		}
	})

	if strings.Contains(srv.logs.String(), "SECRET") {
		t.Error("an upstream key reached the log")
	}
	if !strings.Contains(srv.logs.String(), `"error_kind":"upstream"`) {
		t.Error("failed requests are not in the request log")
	}
	closeUpstreamClients()
	srv.Client().CloseIdleConnections()
	waitFor(t, "upstream connections to go idle", func() bool { return tracker.active() == 0 })
}

// TestClientGoneCancelsUpstream: when the client goes away mid-stream, the
// upstream request is cancelled within a second.
func TestClientGoneCancelsUpstream(t *testing.T) {
	ended := make(chan time.Time, 1)
	h := sim.New("sim", 1, []sim.Model{{Name: "slow", OutputTokens: 1000, TokensPerSecond: 5}}).Handler()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		ended <- time.Now()
	}))
	defer upstream.Close()
	srv := newServer(t, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, nil)
	defer closeUpstreamClients()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"up/slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // the stream has started
		t.Fatal(err)
	}
	gone := time.Now()
	cancel()
	resp.Body.Close()
	select {
	case at := <-ended:
		if d := at.Sub(gone); d > time.Second {
			t.Errorf("upstream ran %v after the client left", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request was never cancelled")
	}
}

// TestSlowReaderIsDropped: a client that stops reading holds no stream and
// no upstream for longer than the write timeout; memory stays bounded because
// the relay pulls one chunk at a time.
func TestSlowReaderIsDropped(t *testing.T) {
	ended := make(chan struct{})
	h := sim.New("sim", 1, []sim.Model{{Name: "firehose", OutputTokens: 2_000_000}}).Handler()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		close(ended)
	}))
	defer upstream.Close()
	srv := newServer(t, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, func(s *httpapi.Server) {
		s.WriteTimeout = 300 * time.Millisecond
	})
	defer closeUpstreamClients()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"up/firehose","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", key, len(body), body)
	// Never read. The gateway's writes block, the deadline passes, the
	// handler returns and the upstream is cancelled.
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("a client that stopped reading kept its upstream stream running")
	}
}
