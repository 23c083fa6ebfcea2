package openai

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/dialecttest"
	"github.com/tidegate/tidegate/internal/sse"
)

func preset(t *testing.T, typ string) provider.Preset {
	t.Helper()
	p, ok := provider.LookupPreset(typ)
	if !ok {
		t.Fatalf("no preset %q", typ)
	}
	return p
}

func TestPrepare(t *testing.T) {
	hi := []any{map[string]any{"role": "user", "content": "hi"}}
	msgs := []llm.Message{{Role: "user", Content: llm.TextContent("hi")}}
	tests := []struct {
		name   string
		preset string
		req    llm.ChatRequest
		stream bool
		want   map[string]any
	}{{
		name: "openai: top_p untouched, a client's stream_options dropped when not streaming", preset: "openai",
		req:  llm.ChatRequest{Model: "gpt", TopP: llm.Ptr(1.0), Stream: true, StreamOptions: &llm.StreamOptions{}, Messages: msgs},
		want: map[string]any{"model": "gpt", "top_p": 1.0, "messages": hi},
	}, {
		name: "streaming always asks for usage", preset: "deepseek", stream: true,
		req:  llm.ChatRequest{Model: "deepseek-chat", Messages: msgs},
		want: map[string]any{"model": "deepseek-chat", "stream": true, "stream_options": map[string]any{"include_usage": true}, "messages": hi},
	}, {
		name: "zhipu clamps top_p 1 to 0.99", preset: "zhipu",
		req:  llm.ChatRequest{Model: "glm-4", TopP: llm.Ptr(1.0), Messages: msgs},
		want: map[string]any{"model": "glm-4", "top_p": 0.99, "messages": hi},
	}, {
		name: "zhipu keeps a top_p under its cap", preset: "zhipu",
		req:  llm.ChatRequest{Model: "glm-4", TopP: llm.Ptr(0.5), Messages: msgs},
		want: map[string]any{"model": "glm-4", "top_p": 0.5, "messages": hi},
	}, {
		name: "dashscope keeps top_p inside (0,1): 1", preset: "dashscope",
		req:  llm.ChatRequest{Model: "qwen", TopP: llm.Ptr(1.0), Messages: msgs},
		want: map[string]any{"model": "qwen", "top_p": 0.9999, "messages": hi},
	}, {
		name: "dashscope keeps top_p inside (0,1): 0", preset: "dashscope",
		req:  llm.ChatRequest{Model: "qwen", TopP: llm.Ptr(0.0), Messages: msgs},
		want: map[string]any{"model": "qwen", "top_p": 0.0001, "messages": hi},
	}, {
		name: "minimax asks for split reasoning; vendor extras pass through", preset: "minimax",
		req: llm.ChatRequest{Model: "MiniMax-M2", Messages: msgs,
			Extra: map[string]json.RawMessage{"top_k": json.RawMessage("40")}},
		want: map[string]any{"model": "MiniMax-M2", "reasoning_split": true, "top_k": 40.0, "messages": hi},
	}, {
		name: "minimax: the client's own reasoning_split wins", preset: "minimax",
		req: llm.ChatRequest{Model: "MiniMax-M2", Messages: msgs,
			Extra: map[string]json.RawMessage{"reasoning_split": json.RawMessage("false")}},
		want: map[string]any{"model": "MiniMax-M2", "reasoning_split": false, "messages": hi},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{Name: tt.preset, Preset: preset(t, tt.preset)}
			b, err := c.prepare(&tt.req, tt.stream)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// The gateway reuses a request across targets: quirks for one must not leak to the next.
func TestPrepareLeavesTheRequestAlone(t *testing.T) {
	req := llm.ChatRequest{Model: "m", TopP: llm.Ptr(1.0), Extra: map[string]json.RawMessage{"top_k": json.RawMessage("40")},
		Messages: []llm.Message{{Role: "user", Content: llm.TextContent("hi")}}}
	before := req
	before.Extra = map[string]json.RawMessage{"top_k": json.RawMessage("40")}
	for _, typ := range []string{"zhipu", "dashscope", "minimax"} {
		if _, err := (&Client{Preset: preset(t, typ)}).prepare(&req, true); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(before, req); diff != "" {
		t.Errorf("request changed (-before +after):\n%s", diff)
	}
}

func TestNormalizeUsage(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want *llm.Usage
	}{
		{"absent", ``, nil},
		{"null", `null`, nil},
		{"not an object", `"lots"`, nil},
		{"openai with details", `{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,` +
			`"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":8}}`,
			&llm.Usage{PromptTokens: 100, CompletionTokens: 20, TotalTokens: 120,
				PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 64}, CompletionTokensDetails: &llm.CompletionTokensDetails{ReasoningTokens: 8}}},
		{"deepseek cache hit tokens", `{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_cache_hit_tokens":80,"prompt_cache_miss_tokens":20}`,
			&llm.Usage{PromptTokens: 100, CompletionTokens: 20, TotalTokens: 120, PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 80}}},
		{"deepseek with both: OpenAI's detail wins", `{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,` +
			`"prompt_cache_hit_tokens":80,"prompt_tokens_details":{"cached_tokens":80}}`,
			&llm.Usage{PromptTokens: 100, CompletionTokens: 20, TotalTokens: 120, PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 80}}},
		{"deepseek zero hits", `{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":10}`,
			&llm.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12, PromptTokensDetails: &llm.PromptTokensDetails{}}},
		{"moonshot top-level cached_tokens", `{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"cached_tokens":50}`,
			&llm.Usage{PromptTokens: 100, CompletionTokens: 20, TotalTokens: 120, PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 50}}},
		{"no total: the sum", `{"prompt_tokens":3,"completion_tokens":4}`, &llm.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := normalizeUsage(json.RawMessage(tt.raw))
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(llm.Usage{}, "Raw")); diff != "" {
				t.Errorf("normalizeUsage (-want +got):\n%s", diff)
			}
			if got != nil && string(got.Raw) != tt.raw {
				t.Errorf("raw usage = %s, want the upstream's %s", got.Raw, tt.raw)
			}
		})
	}
}

func TestSplitThink(t *testing.T) {
	tests := []struct {
		in, reasoning, content string
	}{
		{"<think>\nLet me see.\n</think>\n\nHello", "Let me see.", "Hello"},
		{"\n <think>a</think>b", "a", "b"},
		{"<think></think>Hi", "", "Hi"},
		{"Hello <think>not leading</think>", "", "Hello <think>not leading</think>"},
		{"<think>never closed", "", "<think>never closed"},
		{"plain", "", "plain"},
	}
	for _, tt := range tests {
		r, c := splitThink(tt.in)
		if diff := cmp.Diff([2]string{tt.reasoning, tt.content}, [2]string{r, c}); diff != "" {
			t.Errorf("splitThink(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// upstream answers every call with one fixed body, as a recorded provider would.
func upstream(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestChatCompletion(t *testing.T) {
	answer := func(msg string) string {
		return `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":` + msg +
			`,"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`
	}
	usage := &llm.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15}
	tests := []struct {
		name    string
		preset  string
		body    string
		want    *llm.ChatResponse
		wantRaw bool
	}{{
		name: "an OpenAI-shaped answer is relayed as it came", preset: "openai",
		body: answer(`{"role":"assistant","content":"Hello"}`), wantRaw: true,
		want: &llm.ChatResponse{ID: "chatcmpl-1", Object: "chat.completion", Created: 1, Model: "m", Usage: usage,
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent("Hello")}, FinishReason: "stop"}}},
	}, {
		name: "minimax: inline <think> moves to reasoning_content", preset: "minimax",
		body: answer(`{"role":"assistant","content":"<think>\nplan\n</think>\n\nHello"}`),
		want: &llm.ChatResponse{ID: "chatcmpl-1", Object: "chat.completion", Created: 1, Model: "m", Usage: usage,
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent("Hello"), ReasoningContent: "plan"}, FinishReason: "stop"}}},
	}, {
		name: "minimax: split reasoning is left as it came", preset: "minimax",
		body: answer(`{"role":"assistant","content":"<think>x</think>Hello","reasoning_content":"plan"}`),
		want: &llm.ChatResponse{ID: "chatcmpl-1", Object: "chat.completion", Created: 1, Model: "m", Usage: usage,
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent("<think>x</think>Hello"), ReasoningContent: "plan"}, FinishReason: "stop"}}},
	}, {
		name: "a vendor's answer without object gets one, and is re-encoded", preset: "hunyuan",
		body: `{"id":"h1","created":1,"model":"hunyuan","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}`,
		want: &llm.ChatResponse{ID: "h1", Object: "chat.completion", Created: 1, Model: "hunyuan",
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent("Hi")}, FinishReason: "stop"}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{Name: tt.preset, Preset: preset(t, tt.preset), BaseURL: upstream(t, http.StatusOK, "application/json", tt.body), HTTP: http.DefaultClient}
			got, err := c.ChatCompletion(context.Background(), &llm.ChatRequest{Model: "m"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(llm.ChatResponse{}, "Raw"), cmpopts.IgnoreFields(llm.Usage{}, "Raw")); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if gotRaw := got.Raw != nil; gotRaw != tt.wantRaw {
				t.Errorf("relayed raw = %v, want %v", gotRaw, tt.wantRaw)
			}
		})
	}
}

// errView is how an error was classified.
type errView = dialecttest.ErrView

var failCase = dialecttest.Case

func TestChatCompletionErrors(t *testing.T) {
	tests := []struct {
		name   string
		preset string
		status int
		body   string
		want   errView
	}{
		{"minimax base_resp in a 200", "minimax", 200, `{"id":"","choices":null,"base_resp":{"status_code":1002,"status_msg":"rate limit"}}`,
			errView{Kind: provider.KindRateLimited, Code: "1002", Provider: "minimax", Status: 200}},
		{"an error object in a 200", "qianfan", 200, `{"error":{"code":"tokens_too_long","message":"Prompt tokens too long","type":"invalid_request_error"}}`,
			errView{Kind: provider.KindContextLength, Code: "tokens_too_long", Provider: "qianfan", Status: 200}},
		{"deepseek 402", "deepseek", 402, `{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}`,
			errView{Kind: provider.KindQuotaExceeded, Code: "invalid_request_error", Provider: "deepseek", Status: 402}},
		{"no choices", "openai", 200, `{"id":"x","object":"chat.completion"}`, errView{Kind: provider.KindBadResponse}},
		{"not JSON", "openai", 200, `Hello`, errView{Kind: provider.KindBadResponse}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{Name: tt.preset, Preset: preset(t, tt.preset), BaseURL: upstream(t, tt.status, "application/json", tt.body), HTTP: http.DefaultClient}
			_, err := c.ChatCompletion(context.Background(), &llm.ChatRequest{Model: "m"})
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(&tt.want, dialecttest.View(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func sseStream(events string) *stream {
	body := io.NopCloser(strings.NewReader(events))
	return &stream{c: &Client{Name: "up", APIKey: "sk-test-0000"}, body: body, r: sse.NewReader(body)}
}

func TestStream(t *testing.T) {
	const (
		hello  = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}`
		finish = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`
		usage  = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],` +
			`"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"prompt_cache_hit_tokens":8}}`
	)
	data := func(s string) string { return "data: " + s + "\n\n" }
	chunk := func(raw string, d llm.Delta, finish *string) llm.ChatChunk {
		return llm.ChatChunk{ID: "c1", Object: "chat.completion.chunk", Created: 1, Model: "m",
			Choices: []llm.ChunkChoice{{Delta: d, FinishReason: finish}}, Raw: json.RawMessage(raw)}
	}
	helloChunk := chunk(hello, llm.Delta{Content: llm.Ptr("Hello")}, nil)
	dialecttest.RunStream(t, func(events string) provider.ChatStream { return sseStream(events) }, []dialecttest.StreamCase{{
		Name:   "chunks relayed as they came, keep-alives skipped, deepseek usage normalised",
		Events: ": keep-alive\n\n" + data(hello) + ": keep-alive\n\n" + data(finish) + data(usage) + data("[DONE]"),
		Want: []llm.ChatChunk{helloChunk, chunk(finish, llm.Delta{}, llm.Ptr("stop")),
			{ID: "c1", Object: "chat.completion.chunk", Created: 1, Model: "m", Choices: []llm.ChunkChoice{}, Raw: json.RawMessage(usage),
				Usage: &llm.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12, PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 8}}}},
	}, {
		Name:   "a chunk without object gets one and is re-encoded",
		Events: data(`{"id":"c1","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}`) + data("[DONE]"),
		Want: []llm.ChatChunk{{ID: "c1", Object: "chat.completion.chunk", Created: 1, Model: "m",
			Choices: []llm.ChunkChoice{{Delta: llm.Delta{Content: llm.Ptr("Hi")}, FinishReason: llm.Ptr("stop")}}}},
	}, {
		Name:   "finished without [DONE] is complete",
		Events: data(hello) + data(finish),
		Want:   []llm.ChatChunk{helloChunk, chunk(finish, llm.Delta{}, llm.Ptr("stop"))},
	}, {
		Name:    "ended before any finish",
		Events:  data(hello),
		Want:    []llm.ChatChunk{helloChunk},
		WantErr: &errView{Kind: provider.KindUnavailable, Provider: "up"},
	}, {
		Name:    "an error event mid-stream",
		Events:  data(hello) + "event: error\n" + data(`{"error":{"message":"overloaded","type":"server_error","code":"engine_overloaded_error"}}`),
		Want:    []llm.ChatChunk{helloChunk},
		WantErr: &errView{Kind: provider.KindOverloaded, Code: "engine_overloaded_error", Provider: "up", Status: http.StatusOK},
	}, {
		Name:    "an error object as a data line",
		Events:  data(`{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":"rate_limit_exceeded"}}`),
		WantErr: &errView{Kind: provider.KindRateLimited, Code: "rate_limit_exceeded", Provider: "up", Status: http.StatusOK},
	}, {
		Name:    "minimax base_resp in a chunk without choices",
		Events:  data(hello) + data(`{"id":"c1","base_resp":{"status_code":1027,"status_msg":"output new_sensitive"}}`),
		Want:    []llm.ChatChunk{helloChunk},
		WantErr: &errView{Kind: provider.KindContentFilter, Code: "1027", Provider: "up", Status: http.StatusOK},
	}, {
		Name:    "malformed chunk",
		Events:  data(`{"id":`),
		WantErr: &errView{Kind: provider.KindBadResponse},
	}}, cmpopts.IgnoreFields(llm.Usage{}, "Raw"))
}
