package anthropic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/anthropic"
	"github.com/tidegate/tidegate/internal/provider/providertest"
)

const key = "sk-ant-native-SECRET-0001"

// fixture reads Anthropic's recorded wire format, shared with the
// conformance suite.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "providertest", "testdata", "anthropic", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

func TestNativeBody(t *testing.T) {
	for _, name := range []string{"native_request.cache_control.json", "native_request.thinking_tool.json", "native_request.document.json"} {
		t.Run(name, func(t *testing.T) {
			in := fixture(t, name)
			out, err := anthropic.NativeBody(in, "claude-sonnet-4-5-20250929")
			if err != nil {
				t.Fatal(err)
			}
			want := decode(t, in)
			want["model"] = "claude-sonnet-4-5-20250929"
			if diff := cmp.Diff(want, decode(t, out)); diff != "" {
				t.Errorf("only the model may change (-want +got):\n%s", diff)
			}
			// Every other member keeps the client's bytes.
			var members map[string]json.RawMessage
			_ = json.Unmarshal(in, &members)
			for k, raw := range members {
				if k != "model" && !bytes.Contains(out, raw) {
					t.Errorf("member %s was re-encoded", k)
				}
			}
		})
	}
	t.Run("routing fields", func(t *testing.T) {
		in := []byte(`{"model":"m","api_base":"http://evil","max_tokens":5,"messages":[{"role":"user","content":"hi, my api_key is here"}],"output_config":{"effort":"low","base_url":"http://evil"}}`)
		out, err := anthropic.NativeBody(in, "x")
		if err != nil {
			t.Fatal(err)
		}
		want := `{"model":"x","max_tokens":5,"messages":[{"role":"user","content":"hi, my api_key is here"}],"output_config":{"effort":"low"}}`
		if string(out) != want {
			t.Errorf("got  %s\nwant %s", out, want)
		}
	})
	t.Run("a second model", func(t *testing.T) {
		if _, err := anthropic.NativeBody([]byte(`{"model":"a","MODEL":"b"}`), "x"); err == nil {
			t.Error("another spelling of model was passed on")
		}
	})
}

func client(t *testing.T) (*anthropic.Client, *providertest.Replay) {
	replay := providertest.NewReplay(t)
	return &anthropic.Client{Name: "claude", BaseURL: replay.Server.URL, APIKey: key, HTTP: &http.Client{Timeout: 10 * time.Second}}, replay
}

func nativeRequest(t *testing.T, name string) *provider.NativeRequest {
	body, err := anthropic.NativeBody(fixture(t, name), "claude-sonnet-4-5-20250929")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("anthropic-version", "2023-06-01")
	h.Set("anthropic-beta", "interleaved-thinking-2025-05-14")
	return &provider.NativeRequest{Body: body, Header: h}
}

func TestNativeMessages(t *testing.T) {
	c, replay := client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		request, answer string
		usage           llm.Usage
	}{
		{"native_request.cache_control.json", "chat.json", llm.Usage{PromptTokens: 472 + 1024 + 2048, CompletionTokens: 89, TotalTokens: 472 + 1024 + 2048 + 89,
			PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 2048, CacheWriteTokens: 1024}}},
		{"native_request.thinking_tool.json", "native_answer.text.json", llm.Usage{PromptTokens: 21 + 188086, CompletionTokens: 12, TotalTokens: 21 + 188086 + 12,
			PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 188086}}},
	} {
		t.Run(tc.request, func(t *testing.T) {
			replay.Answer(http.StatusOK, fixture(t, tc.answer), false)
			req := nativeRequest(t, tc.request)
			ans, err := c.Messages(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			got := replay.Last()
			if got.Path != "/v1/messages" || !bytes.Equal(got.Body, req.Body) {
				t.Errorf("upstream got %s %s, want the client's body", got.Path, got.Body)
			}
			if got.Header.Get("x-api-key") != key || got.Header.Get("anthropic-beta") != "interleaved-thinking-2025-05-14" {
				t.Errorf("headers = %v", got.Header)
			}
			if !bytes.Equal(ans.Body, fixture(t, tc.answer)) {
				t.Error("the answer was not relayed byte for byte")
			}
			ans.Usage.Raw = nil
			if diff := cmp.Diff(&tc.usage, ans.Usage); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("count_tokens", func(t *testing.T) {
		replay.Answer(http.StatusOK, fixture(t, "native_count_tokens.json"), false)
		ans, err := c.CountTokens(ctx, nativeRequest(t, "native_request.document.json"))
		if err != nil || string(ans.Body) != string(fixture(t, "native_count_tokens.json")) || replay.Last().Path != "/v1/messages/count_tokens" {
			t.Errorf("count = %v, %v at %s", ans, err, replay.Last().Path)
		}
	})
	t.Run("overloaded", func(t *testing.T) {
		replay.Answer(529, fixture(t, "error.overloaded.529.json"), false)
		_, err := c.Messages(ctx, nativeRequest(t, "native_request.document.json"))
		if e := provider.AsError(err); e.Kind != provider.KindOverloaded {
			t.Errorf("err = %v, want overloaded", err)
		}
	})
}

func TestNativeStream(t *testing.T) {
	c, replay := client(t)
	ctx := context.Background()
	replay.Answer(http.StatusOK, fixture(t, "stream.sse"), true)
	s, err := c.MessagesStream(ctx, nativeRequest(t, "native_request.thinking_tool.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var relayed bytes.Buffer
	firstCommit := ""
	for s.Next() {
		ev := s.Event()
		if ev.Commits && firstCommit == "" {
			firstCommit = string(ev.Data)
		}
		// Deltas are read by a scan: their text must be what a decode reads.
		var e struct {
			Type  string
			Delta struct {
				Text, Thinking string
				PartialJSON    string `json:"partial_json"`
			}
		}
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.Type == "content_block_delta" {
			if want := e.Delta.Text + e.Delta.Thinking + e.Delta.PartialJSON; !ev.Commits || ev.Text != want {
				t.Errorf("delta %s: text %q, commits %v; want %q", ev.Data, ev.Text, ev.Commits, want)
			}
		}
		relayed.WriteString("event: " + ev.Name + "\ndata: " + string(ev.Data) + "\n\n")
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if b, ok := s.(provider.ByteRelayed); !ok || !b.ByteRelayed() {
		t.Error("no delta was read by a scan")
	}
	if got, want := relayed.String(), string(fixture(t, "stream.sse")); got != want {
		t.Errorf("events not relayed as they came:\n%s", cmp.Diff(want, got))
	}
	if want := `"thinking_delta"`; !bytes.Contains([]byte(firstCommit), []byte(want)) {
		t.Errorf("commit point = %s, want the first thinking delta", firstCommit)
	}
	u := s.Usage()
	if u == nil || u.CachedTokens() != 1000 || u.CompletionTokens == 0 || u.PromptTokens < 1000 {
		t.Errorf("usage = %+v", u)
	}

	replay.Answer(http.StatusOK, fixture(t, "stream_error.overloaded.sse"), true)
	s, err = c.MessagesStream(ctx, nativeRequest(t, "native_request.thinking_tool.json"))
	if err != nil {
		t.Fatal(err)
	}
	for s.Next() {
	}
	s.Close()
	if e := provider.AsError(s.Err()); e.Kind != provider.KindOverloaded {
		t.Errorf("in-stream error = %v, want overloaded", s.Err())
	}
}
