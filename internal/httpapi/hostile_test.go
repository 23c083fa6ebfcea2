package httpapi_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// rawRequest opens a connection, sends a request head and the first bytes
// of its body, and leaves the rest unsent, as a slow or hostile client does.
func rawRequest(t *testing.T, addr, head string, sent string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head+sent); err != nil {
		t.Fatal(err)
	}
	return conn
}

// answerThenClose reads the response the server sends and then waits for
// it to close the connection; a server that waits on the body instead
// trips the read deadline. It returns the status line.
func answerThenClose(t *testing.T, conn net.Conn, within time.Duration) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", within, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); !closed(err) {
		t.Fatalf("%s: the connection stayed open (%v)", resp.Status, err)
	}
	return resp.Status
}

// closed reports whether a read error means the peer closed the connection.
func closed(err error) bool {
	return errors.Is(err, io.EOF) || (err != nil && !errors.Is(err, os.ErrDeadlineExceeded))
}

// TestSlowBodiesAreCut: a client that sends headers and then trickles (or
// withholds) a body gets its answer and a closed connection, on every route
// and with or without a key; it is never left waiting on a drain.
func TestSlowBodiesAreCut(t *testing.T) {
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) {
		s.BodyReadTimeout = 300 * time.Millisecond
	})
	addr := srv.Listener.Addr().String()
	const size = 100_000 // under net/http's 256 KiB drain limit: it would wait for all of it
	cases := []struct {
		name, method, path, auth string
		status                   string
	}{
		{"no key, chat", "POST", "/v1/chat/completions", "", "401"},
		{"wrong key, messages", "POST", "/v1/messages", "Bearer wrong", "401"},
		{"no key, admin", "POST", "/admin/keys", "", "401"},
		{"unknown route", "POST", "/nothing", "", "404"},
		{"health with a body", "GET", "/healthz", "", "200"},
		{"key, a route that reads no body", "GET", "/v1/models", "Bearer " + key, "200"},
		{"key, chat: the body times out", "POST", "/v1/chat/completions", "Bearer " + key, "400"},
		{"key, admin: the body times out", "POST", "/admin/keys", "Bearer " + key, "400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", tc.method, tc.path, size)
			if tc.auth != "" {
				head += "Authorization: " + tc.auth + "\r\n"
			}
			conn := rawRequest(t, addr, head+"\r\n", `{"model":"chat","messages":[`)
			status := answerThenClose(t, conn, 3*time.Second)
			if !strings.HasPrefix(status, tc.status) {
				t.Errorf("status %q, want %s", status, tc.status)
			}
		})
	}
}

// TestManySlowClientsWithoutKey is the reported attack at a small scale:
// many connections trickling bodies with no key are all answered and closed.
func TestManySlowClientsWithoutKey(t *testing.T) {
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, nil)
	addr := srv.Listener.Addr().String()
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
	conns := make([]net.Conn, 50)
	for i := range conns {
		conns[i] = rawRequest(t, addr, head, "{")
	}
	for _, c := range conns {
		if status := answerThenClose(t, c, 3*time.Second); !strings.HasPrefix(status, "401") {
			t.Fatalf("status %q", status)
		}
	}
}

// TestConnectionsPerClientAreCapped: past max connections from one address,
// a new one is refused at once; other addresses are unaffected, and a closed
// connection frees its place.
func TestConnectionsPerClientAreCapped(t *testing.T) {
	api := &httpapi.Server{Logger: slog.New(slog.DiscardHandler), MasterKey: key, BodyLimit: 1 << 20}
	srv := httptest.NewUnstartedServer(api.Handler())
	srv.Listener = httpapi.LimitConnsPerClient(srv.Listener, 3)
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// health asks on an open connection and reports the status, or "closed".
	health := func(c net.Conn) string {
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "closed"
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("no answer: the connection was neither served nor refused")
			}
			return "closed"
		}
		resp.Body.Close()
		return resp.Status
	}
	var held []net.Conn
	for range 3 {
		c := dial("127.0.0.1")
		if got := health(c); got != "200 OK" {
			t.Fatalf("connection within the cap: %s", got)
		}
		held = append(held, c)
	}
	if got := health(dial("127.0.0.1")); got != "429 Too Many Requests" && got != "closed" {
		t.Errorf("connection past the cap: %s, want refused", got)
	}
	if got := health(dial("127.0.0.2")); got != "200 OK" {
		t.Errorf("another address: %s", got)
	}
	held[0].Close()
	for deadline := time.Now().Add(3 * time.Second); ; {
		if got := health(dial("127.0.0.1")); got == "200 OK" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection never freed its place")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClientAddr(t *testing.T) {
	cases := map[string]string{
		"127.0.0.1:5000":             "127.0.0.1",
		"[::ffff:10.0.0.7]:80":       "10.0.0.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::1]:443":   "2001:db8:1:2::/64",
	}
	for in, want := range cases {
		addr, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, httpapi.ClientAddr(addr)); d != "" {
			t.Errorf("%s: %s", in, d)
		}
	}
}

// chatBody is a valid chat request for model of exactly size bytes.
func chatBody(model string, size int) string {
	head, tail := `{"model":"`+model+`","messages":[{"role":"user","content":"`, `"}]}`
	return head + strings.Repeat("a", size-len(head)-len(tail)) + tail
}

// TestBodyMemoryIsCapped: request bodies held at once (BodyCopies times
// their size while read and decoded) never pass BodyMemory; past it a
// request gets a fast 503 with Retry-After in its route's shape, whether its
// length is declared or not, and the memory is free again when the holder's
// request ends.
func TestBodyMemoryIsCapped(t *testing.T) {
	var api *httpapi.Server
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) {
		s.BodyLimit, s.BodyMemory = 256<<10, 1<<20
		api = s
	})
	const held = 200_000
	big := chatBody("sim/fast", held)
	holder := rawRequest(t, srv.Listener.Addr().String(), fmt.Sprintf(
		"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", key, held), big[:1000])
	for deadline := time.Now().Add(3 * time.Second); api.BodyMemoryInUse() != httpapi.BodyCopies*held; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow body holds %d bytes, want %d", api.BodyMemoryInUse(), httpapi.BodyCopies*held)
		}
	}

	second := chatBody("sim/fast", 100_000)
	resp := srv.post(t, "/v1/chat/completions", second)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past the body memory: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if e := openAIError(t, resp); e.Code == nil || *e.Code != "server_busy" {
		t.Errorf("error code %v", e.Code)
	}
	resp = srv.post(t, "/v1/messages", `{"model":"sim/fast","max_tokens":5,"messages":[{"role":"user","content":"`+strings.Repeat("b", 100_000)+`"}]}`)
	// Anthropic's overload status, which its SDKs read as an overloaded error.
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 529 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"type":"overloaded_error"`) {
		t.Errorf("/v1/messages past the body memory: %d %s", resp.StatusCode, b)
	}
	// A body of unknown length is held as it grows.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", io.MultiReader(strings.NewReader(second)))
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("chunked body past the body memory: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	if _, err := io.WriteString(holder, big[1000:]); err != nil {
		t.Fatal(err)
	}
	_ = holder.SetReadDeadline(time.Now().Add(5 * time.Second))
	if r, err := http.ReadResponse(bufio.NewReader(holder), nil); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("the held request: %v %v", r, err)
	}
	for deadline := time.Now().Add(3 * time.Second); api.BodyMemoryInUse() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held after every request ended", api.BodyMemoryInUse())
		}
	}
	if resp := srv.post(t, "/v1/chat/completions", second); resp.StatusCode != http.StatusOK {
		t.Errorf("after the memory was freed: %d", resp.StatusCode)
	}
}

// TestStreamHoldsItsBodyOnly: once a stream's answer starts, its request
// holds only its body's size (the decoding copies are gone), until it ends.
func TestStreamHoldsItsBodyOnly(t *testing.T) {
	var api *httpapi.Server
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, []sim.Model{{Name: "slow", OutputTokens: 40, TokensPerSecond: 40}})}, nil, func(s *httpapi.Server) {
		s.BodyMemory = 8 << 20
		api = s
	})
	body := `{"model":"sim/slow","stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("c", 50_000) + `"}]}`
	resp := srv.post(t, "/v1/chat/completions", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := api.BodyMemoryInUse(); got != int64(len(body)) {
		t.Errorf("a running stream holds %d bytes, want its body's %d", got, len(body))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	for deadline := time.Now().Add(3 * time.Second); api.BodyMemoryInUse() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes held after the stream ended", api.BodyMemoryInUse())
		}
	}
}
