package cli

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// gatewayProc is a tidegate started through Main, as the binary would be.
type gatewayProc struct {
	URL    string
	store  string // the store DSN, when started from a config
	config string // the config file, when started from one
	cancel context.CancelFunc
	done   chan int
	stderr *syncBuffer

	stopOnce sync.Once
	exitCode int
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startGateway runs `tidegate serve --config` with the given YAML (the store
// goes to a temp dir) and waits until it listens.
func startGateway(t *testing.T, yaml string) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	yaml = strings.ReplaceAll(yaml, "STORE", "sqlite:"+filepath.Join(dir, "t.db"))
	path := filepath.Join(dir, "tidegate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startMain(t, "serve", "--config", path, "--listen", "127.0.0.1:0")
	g.config = path
	if m := regexp.MustCompile(`(?m)^store: "?([^"\n]+)"?$`).FindStringSubmatch(yaml); m != nil {
		g.store = m[1]
	}
	return g
}

func startMain(t *testing.T, args ...string) *gatewayProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	g := &gatewayProc{cancel: cancel, done: make(chan int, 1), stderr: &syncBuffer{}}
	go func() {
		code := Main(ctx, args, pw, g.stderr)
		pw.Close()
		g.done <- code
	}()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "listening on "); i >= 0 && !sent {
				u := strings.Fields(line[i+len("listening on "):])[0]
				urlc <- strings.TrimSuffix(u, "/v1")
				sent = true
			}
		}
		if !sent {
			close(urlc)
		}
	}()
	select {
	case u, ok := <-urlc:
		if !ok {
			t.Fatalf("tidegate did not start: %s", g.stderr.String())
		}
		g.URL = u
	case <-time.After(10 * time.Second):
		t.Fatalf("tidegate did not start in time: %s", g.stderr.String())
	}
	t.Cleanup(g.stop)
	return g
}

// stop cancels Main and waits for it to return; safe to call twice.
func (g *gatewayProc) stop() {
	g.stopOnce.Do(func() {
		g.cancel()
		select {
		case g.exitCode = <-g.done:
		case <-time.After(40 * time.Second):
			g.exitCode = -1
		}
	})
}

// simUpstream serves a sim fleet over HTTP, as an OpenAI-compatible upstream.
func simUpstream(t *testing.T, models ...sim.Model) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(sim.New("upstream", 7, models).Handler())
	t.Cleanup(srv.Close)
	return srv
}

const testKey = "test-master-key-0123456789"

func authed(req *http.Request) *http.Request {
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	return req
}

func asError[T error](err error, target *T) bool { return errors.As(err, target) }

// postChat sends a chat completion body to a gateway with the master key,
// plus any extra headers as name, value pairs. Call it from the test's own
// goroutine: it stops the test when the request cannot be sent.
func postChat(t testing.TB, url, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
