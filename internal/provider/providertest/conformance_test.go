package providertest_test

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/providertest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const secretKey = "sk-conformance-SECRET-0000"

// TestFixtures runs every provider type against its recorded fixtures:
// testdata/TYPE/chat.json, stream.sse, error.KIND.STATUS[.x].json and
// stream_error.KIND.sse. Every type tidegate offers (but sim) must have them.
func TestFixtures(t *testing.T) {
	for _, typ := range config.Types() {
		if typ == "sim" {
			continue
		}
		t.Run(typ, func(t *testing.T) {
			dir := filepath.Join("testdata", typ)
			if _, err := os.Stat(filepath.Join(dir, "chat.json")); err != nil {
				t.Fatalf("no fixtures for provider type %s: %v", typ, err)
			}
			replay := providertest.NewReplay(t)
			base := replay.Server.URL
			if typ == "anthropic" {
				base = replay.Server.URL // the client adds /v1/messages
			}
			ps, err := fleet.Build([]config.Provider{{Name: "p-" + typ, Type: typ, BaseURL: base, APIKey: secretKey, Timeout: 5 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			p := ps["p-"+typ]
			runFixtures(t, dir, typ, p, replay)
		})
	}
}

func runFixtures(t *testing.T, dir, typ string, p provider.Provider, replay *providertest.Replay) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("chat", func(t *testing.T) {
		replay.Answer(http.StatusOK, read("chat.json"), false)
		resp, err := p.ChatCompletion(ctx, providertest.StandardRequest())
		if err != nil {
			t.Fatal(err)
		}
		checkAuth(t, typ, replay.Last())
		golden(t, filepath.Join(dir, "request.golden.json"), requestView(replay.Last()))
		if resp.Usage == nil || resp.Usage.PromptTokens == 0 || resp.Usage.Raw == nil {
			t.Errorf("usage not normalised or raw usage not kept: %+v", resp.Usage)
		}
		golden(t, filepath.Join(dir, "chat.golden.json"), resp)
	})

	t.Run("stream", func(t *testing.T) {
		replay.Answer(http.StatusOK, read("stream.sse"), true)
		req := providertest.StandardRequest()
		req.Stream = true
		s, err := p.ChatCompletionStream(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := providertest.Drain(s)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join(dir, "stream_request.golden.json"), requestView(replay.Last()))
		if sum.Finish == "" || sum.Usage == nil || (sum.Content == "" && len(sum.ToolCalls) == 0) {
			t.Errorf("stream lacks output, finish reason or usage: %+v", sum)
		}
		golden(t, filepath.Join(dir, "stream.golden.json"), sum)
	})

	// The byte relay (a caller of the same dialect) must read the same
	// stream as the whole decode: the same golden summary.
	t.Run("stream, byte relay", func(t *testing.T) {
		replay.Answer(http.StatusOK, read("stream.sse"), true)
		req := providertest.StandardRequest()
		req.Stream = true
		s, err := p.ChatCompletionStream(provider.WithByteRelay(ctx, true), req)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := providertest.Drain(s)
		if err != nil {
			t.Fatal(err)
		}
		if !*update {
			golden(t, filepath.Join(dir, "stream.golden.json"), sum)
		}
		// Anthropic and Gemini are translated; DashScope's chunks carry a null
		// system_fingerprint and Zhipu's no object, so they are re-encoded
		// to OpenAI's shape. Every other OpenAI-dialect stream is relayed.
		want := !map[string]bool{"anthropic": true, "gemini": true, "dashscope": true, "zhipu": true}[typ]
		b, ok := s.(provider.ByteRelayed)
		if got := ok && b.ByteRelayed(); got != want {
			t.Errorf("byte relay taken: %v, want %v", got, want)
		}
	})

	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "error."):
			parts := strings.Split(name, ".") // error KIND STATUS [x] json
			wantKind, status := parts[1], atoi(t, parts[2])
			t.Run(name, func(t *testing.T) {
				replay.Answer(status, read(name), false)
				_, err := p.ChatCompletion(ctx, providertest.StandardRequest())
				checkError(t, err, wantKind, typ)
				// The same error must surface when a stream is asked for.
				req := providertest.StandardRequest()
				req.Stream = true
				s, err := p.ChatCompletionStream(ctx, req)
				if err == nil {
					_, err = providertest.Drain(s)
				}
				checkError(t, err, wantKind, typ)
			})
		case strings.HasPrefix(name, "stream_error."):
			wantKind := strings.Split(name, ".")[1]
			for _, relay := range []bool{false, true} { // decoded, and on the byte relay
				t.Run(name+map[bool]string{true: ", byte relay"}[relay], func(t *testing.T) {
					replay.Answer(http.StatusOK, read(name), true)
					s, err := p.ChatCompletionStream(provider.WithByteRelay(ctx, relay), providertest.StandardRequest())
					if err != nil {
						t.Fatal(err)
					}
					sum, err := providertest.Drain(s)
					if sum.Chunks == 0 {
						t.Error("no chunk before the in-stream error")
					}
					checkError(t, err, wantKind, typ)
				})
			}
		}
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("fixture name: bad status %q", s)
	}
	return n
}

func checkError(t *testing.T, err error, wantKind, typ string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got none", wantKind)
	}
	e := provider.AsError(err)
	if e.Kind.String() != wantKind {
		t.Errorf("kind = %s, want %s (%v)", e.Kind, wantKind, err)
	}
	if e.Provider != "p-"+typ {
		t.Errorf("provider = %q", e.Provider)
	}
	if e.Message == "" {
		t.Error("empty error message")
	}
	if strings.Contains(e.Error(), "SECRET") || strings.Contains(e.Error(), "sk-proj-Ab12") || strings.Contains(e.Error(), "ALTAK-abcdef") {
		t.Errorf("error leaks a key: %q", e.Error())
	}
}

// checkAuth: the credential goes in the dialect's header, never in the URL.
func checkAuth(t *testing.T, typ string, r providertest.Recorded) {
	t.Helper()
	var got string
	switch typ {
	case "anthropic":
		got = r.Header.Get("x-api-key")
		if r.Header.Get("anthropic-version") == "" {
			t.Error("anthropic-version header missing")
		}
	case "gemini":
		got = r.Header.Get("x-goog-api-key")
	default:
		got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if got != secretKey {
		t.Errorf("credential header = %q", got)
	}
	if strings.Contains(r.Path, "SECRET") {
		t.Error("credential in the URL")
	}
}

// requestView is what golden files keep of a request: method, path and body.
func requestView(r providertest.Recorded) any {
	var body any
	_ = json.Unmarshal(r.Body, &body)
	return map[string]any{"method": r.Method, "path": r.Path, "body": body}
}

// golden compares v, as indented JSON, with a file; -update rewrites it.
func golden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = normalizeJSON(t, got)
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(strings.TrimSpace(string(want)), strings.TrimSpace(string(got))); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
	}
}

// normalizeJSON sorts keys and drops wall-clock fields.
func normalizeJSON(t *testing.T, b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	dropVolatile(v)
	out, _ := json.MarshalIndent(v, "", "  ")
	return out
}

func dropVolatile(v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "created" {
				delete(x, k)
				continue
			}
			if k == "id" {
				if s, ok := x[k].(string); ok && strings.HasPrefix(s, "chatcmpl-gemini-") {
					delete(x, k)
					continue
				}
			}
			dropVolatile(x[k])
		}
	case []any:
		for _, c := range x {
			dropVolatile(c)
		}
	}
}
