package cli

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// gatewayProc is a tidegate built from a config by the composition root
// (app.Start) and serving on loopback, as `tidegate serve --config` would.
type gatewayProc struct {
	URL    string
	store  string // the store DSN, when started from a config
	config string // the config file, when started from one
	stderr *syncBuffer
	run    *app.Running

	stopOnce sync.Once
	serveErr error // what serving returned, once stopped
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

// startGateway serves tidegate with the given YAML (STORE becomes a SQLite
// store in a temp dir) on a loopback port, with the options given.
func startGateway(t *testing.T, yaml string, opts ...app.Options) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	yaml = strings.ReplaceAll(yaml, "STORE", "sqlite:"+filepath.Join(dir, "t.db"))
	path := filepath.Join(dir, "tidegate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startConfig(t, path, opts...)
}

// startConfig serves tidegate with the config file at path on a loopback port.
func startConfig(t *testing.T, path string, opts ...app.Options) *gatewayProc {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := serveConfig(t, cfg, opts...)
	g.config = path
	return g
}

// serveConfig serves tidegate with cfg on a loopback port, with the
// options given (their logger and version are the harness's).
func serveConfig(t *testing.T, cfg *config.Config, opts ...app.Options) *gatewayProc {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if !strings.HasPrefix(cfg.Store, "sqlite:") {
		// The default outbox of a PostgreSQL store is under ./tidegate-data.
		cfg.Budgets.Outbox.Path = filepath.Join(t.TempDir(), "outbox")
	}
	g := &gatewayProc{store: cfg.Store, stderr: &syncBuffer{}}
	o := app.Options{}
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Logger, o.Version = newLogger(g.stderr, cfg.LogLevel), Version
	r, err := app.Start(context.Background(), cfg, o)
	if err != nil {
		t.Fatalf("tidegate did not start: %v", err)
	}
	g.run, g.URL = r, r.URL
	t.Cleanup(g.stop)
	return g
}

// stop drains and closes the gateway; safe to call twice.
func (g *gatewayProc) stop() { g.stopOnce.Do(func() { g.serveErr = g.run.Stop() }) }

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
	return sendJSON(t, http.MethodPost, url+"/v1/chat/completions", testKey, body, header...)
}

// sendJSON sends a JSON body with a key and extra headers (name, value pairs)
// and returns the response unread. Call it from the test's own goroutine.
func sendJSON(t testing.TB, method, url, key, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
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
