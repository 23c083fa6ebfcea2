package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

const key = "tg-test-master-key"

// countingProvider records how many calls reached it.
type countingProvider struct {
	provider.Provider
	calls atomic.Int64
}

func (c *countingProvider) ChatCompletion(ctx context.Context, req *llm.ChatRequest) (*llm.ChatResponse, error) {
	c.calls.Add(1)
	return c.Provider.ChatCompletion(ctx, req)
}

func (c *countingProvider) ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (provider.ChatStream, error) {
	c.calls.Add(1)
	return c.Provider.ChatCompletionStream(ctx, req)
}

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testServer struct {
	*httptest.Server
	logs *lockedBuffer
}

// newServer serves tidegate's API on loopback over the given providers.
// Each provider's models are open (any name); routes add public names.
func newServer(t *testing.T, providers map[string]provider.Provider, routes []router.Route, tune func(*httpapi.Server)) *testServer {
	t.Helper()
	var order []router.Provider
	for name := range providers {
		order = append(order, router.Provider{Name: name})
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	api := &httpapi.Server{
		Gateway:         &gateway.Gateway{Router: router.New(router.Config{Providers: order, Routes: routes}), Providers: providers, Logger: logger, Created: time.Unix(1700000000, 0)},
		Logger:          logger,
		MasterKey:       key,
		BodyLimit:       1 << 20,
		BodyReadTimeout: 5 * time.Second,
		WriteTimeout:    5 * time.Second,
	}
	if tune != nil {
		tune(api)
	}
	srv := httptest.NewUnstartedServer(api.Handler())
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, logs: logs}
}

func (s *testServer) post(t *testing.T, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// openAIError decodes OpenAI's error shape strictly.
func openAIError(t *testing.T, resp *http.Response) llm.ErrorDetail {
	t.Helper()
	var body struct {
		Error *llm.ErrorDetail `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil || body.Error == nil || body.Error.Message == "" || body.Error.Type == "" {
		t.Fatalf("not an OpenAI error body: %s", b)
	}
	return *body.Error
}

// sseEvents reads a whole SSE body into its data payloads.
func sseEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}
