package anthropic

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/dialecttest"
	"github.com/tidegate/tidegate/internal/sse"
)

func user(text string) llm.Message { return llm.Message{Role: "user", Content: llm.TextContent(text)} }

func text(s string) Block { return Block{Type: "text", Text: s} }

func TestFromChatRequest(t *testing.T) {
	weather := llm.Tool{Type: "function", Function: llm.ToolFunction{Name: "weather", Description: "d",
		Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}}}`)}}
	bare := llm.Tool{Type: "function", Function: llm.ToolFunction{Name: "now"}}
	tests := []struct {
		name string
		req  llm.ChatRequest
		want MessagesRequest
	}{{
		name: "system lifted, max_tokens defaulted",
		req:  llm.ChatRequest{Model: "claude", Messages: []llm.Message{{Role: "system", Content: llm.TextContent("be terse")}, user("hi")}},
		want: MessagesRequest{Model: "claude", MaxTokens: DefaultMaxTokens, System: System{text("be terse")},
			Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "max_completion_tokens wins, stop and user carried",
		req: llm.ChatRequest{Model: "m", MaxTokens: llm.Ptr(10), MaxCompletionTokens: llm.Ptr(20), Stop: llm.Stop{"END"},
			User: "u1", Messages: []llm.Message{user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: 20, StopSequences: []string{"END"}, Metadata: &Metadata{UserID: "u1"},
			Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "temperature and top_p: temperature kept, clamped to 1, top_p dropped",
		req:  llm.ChatRequest{Model: "m", Temperature: llm.Ptr(1.5), TopP: llm.Ptr(0.9), Messages: []llm.Message{user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Temperature: llm.Ptr(1.0),
			Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "top_p alone is kept",
		req:  llm.ChatRequest{Model: "m", TopP: llm.Ptr(0.9), Messages: []llm.Message{user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, TopP: llm.Ptr(0.9),
			Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "reasoning effort enables thinking within max_tokens (never raised past the reservation), drops sampling",
		req: llm.ChatRequest{Model: "m", ReasoningEffort: "high", Temperature: llm.Ptr(0.2), TopP: llm.Ptr(0.5),
			MaxTokens: llm.Ptr(5000), Messages: []llm.Message{user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: 5000, Thinking: &Thinking{Type: "enabled", BudgetTokens: 4999},
			Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "low effort keeps a larger max_tokens",
		req:  llm.ChatRequest{Model: "m", ReasoningEffort: "low", MaxTokens: llm.Ptr(8000), Messages: []llm.Message{user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: 8000, Thinking: &Thinking{Type: "enabled", BudgetTokens: 1024},
			Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "tools: a tool without parameters gets an object schema; required is any, no parallel",
		req: llm.ChatRequest{Model: "m", Tools: []llm.Tool{weather, bare}, ToolChoice: json.RawMessage(`"required"`),
			ParallelToolCalls: llm.Ptr(false), Messages: []llm.Message{user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens,
			Tools: []Tool{{Name: "weather", Description: "d", InputSchema: weather.Function.Parameters},
				{Name: "now", InputSchema: json.RawMessage(`{"type":"object"}`)}},
			ToolChoice: &ToolChoice{Type: "any", DisableParallelToolUse: true},
			Messages:   []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "named tool choice",
		req: llm.ChatRequest{Model: "m", Tools: []llm.Tool{weather},
			ToolChoice: json.RawMessage(`{"type":"function","function":{"name":"weather"}}`), Messages: []llm.Message{user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens,
			Tools:      []Tool{{Name: "weather", Description: "d", InputSchema: weather.Function.Parameters}},
			ToolChoice: &ToolChoice{Type: "tool", Name: "weather"}, Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "tool choice none never disables parallel use",
		req: llm.ChatRequest{Model: "m", Tools: []llm.Tool{weather}, ToolChoice: json.RawMessage(`"none"`),
			ParallelToolCalls: llm.Ptr(false), Messages: []llm.Message{user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens,
			Tools:      []Tool{{Name: "weather", Description: "d", InputSchema: weather.Function.Parameters}},
			ToolChoice: &ToolChoice{Type: "none"}, Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "tool round trip: calls become tool_use, results merge into one user turn",
		req: llm.ChatRequest{Model: "m", Messages: []llm.Message{
			user("weather?"),
			{Role: "assistant", Content: llm.TextContent("checking"), ToolCalls: []llm.ToolCall{
				{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":"Hangzhou"}`}},
				{ID: "c2", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":`}}}},
			{Role: "tool", ToolCallID: "c1", Content: llm.TextContent(`{"temp":21}`)},
			{Role: "tool", ToolCallID: "c2", Content: llm.TextContent("bad arguments")},
			user("thanks"),
		}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Messages: []Message{
			{Role: "user", Content: Blocks{text("weather?")}},
			{Role: "assistant", Content: Blocks{text("checking"),
				{Type: "tool_use", ID: "c1", Name: "weather", Input: json.RawMessage(`{"city":"Hangzhou"}`)},
				{Type: "tool_use", ID: "c2", Name: "weather", Input: json.RawMessage(`{}`)}}},
			{Role: "user", Content: Blocks{
				{Type: "tool_result", ToolUseID: "c1", Content: json.RawMessage(`"{\"temp\":21}"`)},
				{Type: "tool_result", ToolUseID: "c2", Content: json.RawMessage(`"bad arguments"`)},
				text("thanks")}},
		}},
	}, {
		name: "images: data URI becomes base64, anything else a url",
		req: llm.ChatRequest{Model: "m", Messages: []llm.Message{{Role: "user", Content: llm.Content{Set: true, Parts: []llm.ContentPart{
			{Type: "text", Text: "what is it?"},
			{Type: "image_url", ImageURL: &llm.ImageURL{URL: "data:image/png;base64,iVBORw0"}},
			{Type: "image_url", ImageURL: &llm.ImageURL{URL: "https://example.com/cat.jpg"}},
		}}}}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Messages: []Message{{Role: "user", Content: Blocks{
			text("what is it?"),
			{Type: "image", Source: &Source{Type: "base64", MediaType: "image/png", Data: "iVBORw0"}},
			{Type: "image", Source: &Source{Type: "url", URL: "https://example.com/cat.jpg"}},
		}}}},
	}, {
		name: "json mode is asked for in the system prompt",
		req: llm.ChatRequest{Model: "m", ResponseFormat: &llm.ResponseFormat{Type: "json_schema", JSONSchema: json.RawMessage(`{"name":"x"}`)},
			Messages: []llm.Message{{Role: "developer", Content: llm.TextContent("sys")}, user("hi")}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens,
			System:   System{text(`Respond with a single JSON object and nothing else. It must match this JSON schema: {"name":"x"}`), text("sys")},
			Messages: []Message{{Role: "user", Content: Blocks{text("hi")}}}},
	}, {
		name: "a trailing assistant prefix stays last (prefill), an empty assistant turn keeps a block",
		req: llm.ChatRequest{Model: "m", Messages: []llm.Message{user("count"), {Role: "assistant"}, user("again"),
			{Role: "assistant", Content: llm.TextContent("1, 2,"), Prefix: true}}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Messages: []Message{
			{Role: "user", Content: Blocks{text("count")}}, {Role: "assistant", Content: Blocks{text("")}},
			{Role: "user", Content: Blocks{text("again")}}, {Role: "assistant", Content: Blocks{text("1, 2,")}}}},
	}, {
		// Anthropic answers 400 "final assistant content cannot end with trailing
		// whitespace": a resumed stream whose text so far ends a line would fail.
		name: "a final assistant turn loses its trailing whitespace",
		req: llm.ChatRequest{Model: "m", Messages: []llm.Message{user("list"),
			{Role: "assistant", Content: llm.TextContent("1. one\n2. two \n\n"), Prefix: true}}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Messages: []Message{
			{Role: "user", Content: Blocks{text("list")}}, {Role: "assistant", Content: Blocks{text("1. one\n2. two")}}}},
	}, {
		name: "a final assistant turn of only whitespace is no prefill",
		req: llm.ChatRequest{Model: "m", Messages: []llm.Message{user("go"),
			{Role: "assistant", Content: llm.TextContent(" \n"), Prefix: true}}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Messages: []Message{{Role: "user", Content: Blocks{text("go")}}}},
	}, {
		name: "merged final assistant turns: empty blocks go, the text before them is trimmed",
		req: llm.ChatRequest{Model: "m", Messages: []llm.Message{user("go"),
			{Role: "assistant", Content: llm.TextContent("a \n")}, {Role: "assistant", Content: llm.TextContent("\t"), Prefix: true}}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Messages: []Message{
			{Role: "user", Content: Blocks{text("go")}}, {Role: "assistant", Content: Blocks{text("a")}}}},
	}, {
		name: "a final assistant turn ending in a tool call is left alone",
		req: llm.ChatRequest{Model: "m", Messages: []llm.Message{user("go"), {Role: "assistant", Content: llm.TextContent("calling "),
			ToolCalls: []llm.ToolCall{{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: "{}"}}}}}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Messages: []Message{{Role: "user", Content: Blocks{text("go")}},
			{Role: "assistant", Content: Blocks{text("calling "), {Type: "tool_use", ID: "c1", Name: "f", Input: json.RawMessage("{}")}}}}},
	}, {
		name: "earlier assistant turns keep their whitespace",
		req:  llm.ChatRequest{Model: "m", Messages: []llm.Message{user("a"), {Role: "assistant", Content: llm.TextContent("b\n")}, user("c")}},
		want: MessagesRequest{Model: "m", MaxTokens: DefaultMaxTokens, Messages: []Message{
			{Role: "user", Content: Blocks{text("a")}}, {Role: "assistant", Content: Blocks{text("b\n")}}, {Role: "user", Content: Blocks{text("c")}}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromChatRequest(&tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("FromChatRequest (-want +got):\n%s", diff)
			}
		})
	}
}

// errView is how an error was classified.
type errView = dialecttest.ErrView

var failCase = dialecttest.Case

func TestFromChatRequestRejects(t *testing.T) {
	tests := []struct {
		name string
		req  llm.ChatRequest
		want errView
	}{
		{"n over 1", llm.ChatRequest{N: llm.Ptr(2), Messages: []llm.Message{user("hi")}},
			errView{Kind: provider.KindUnsupported, Code: "unsupported_parameter", Param: "n"}},
		{"unknown role", llm.ChatRequest{Messages: []llm.Message{{Role: "narrator"}}},
			errView{Kind: provider.KindInvalidRequest, Param: "messages"}},
		{"system only", llm.ChatRequest{Messages: []llm.Message{{Role: "system", Content: llm.TextContent("s")}}},
			errView{Kind: provider.KindInvalidRequest, Param: "messages"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromChatRequest(&tt.req)
			if err == nil {
				t.Fatal("accepted")
			}
			if diff := cmp.Diff(&tt.want, dialecttest.View(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestToChatResponse(t *testing.T) {
	stop := func(s string) *string { return &s }
	tests := []struct {
		name string
		in   MessagesResponse
		want llm.ChatResponse
	}{{
		name: "text, thinking and cache usage",
		in: MessagesResponse{ID: "msg_1", Model: "claude", StopReason: stop("end_turn"),
			Content: []Block{{Type: "thinking", Thinking: "hmm", Signature: "sig"}, text("Hel"), text("lo")},
			Usage:   Usage{InputTokens: 10, OutputTokens: 5, CacheReadInputTokens: 100, CacheCreationInputTokens: 20}},
		want: llm.ChatResponse{ID: "msg_1", Object: "chat.completion", Model: "claude",
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent("Hello"), ReasoningContent: "hmm"},
				FinishReason: "stop"}},
			Usage: &llm.Usage{PromptTokens: 130, CompletionTokens: 5, TotalTokens: 135,
				PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 100, CacheWriteTokens: 20}}},
	}, {
		name: "tool use only: no content, arguments compacted",
		in: MessagesResponse{ID: "msg_2", Model: "claude", StopReason: stop("tool_use"),
			Content: []Block{{Type: "tool_use", ID: "toolu_1", Name: "weather", Input: json.RawMessage(`{ "city": "Hangzhou" }`)}},
			Usage:   Usage{InputTokens: 3, OutputTokens: 4}},
		want: llm.ChatResponse{ID: "msg_2", Object: "chat.completion", Model: "claude",
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: "toolu_1", Type: "function",
				Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":"Hangzhou"}`}}}}, FinishReason: "tool_calls"}},
			Usage: &llm.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}},
	}, {
		name: "no stop reason and no content",
		in:   MessagesResponse{ID: "msg_3", Model: "claude"},
		want: llm.ChatResponse{ID: "msg_3", Object: "chat.completion", Model: "claude",
			Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent("")}, FinishReason: "stop"}},
			Usage:   &llm.Usage{}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToChatResponse(&tt.in)
			if diff := cmp.Diff(&tt.want, got, cmpopts.IgnoreFields(llm.ChatResponse{}, "Created")); diff != "" {
				t.Errorf("ToChatResponse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	finish := map[string]string{"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
		"model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter", "": "stop"}
	got := map[string]string{}
	for stop := range finish {
		got[stop] = FinishReason(stop)
	}
	if diff := cmp.Diff(finish, got); diff != "" {
		t.Errorf("FinishReason (-want +got):\n%s", diff)
	}
	stops := map[string]string{"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
		"content_filter": "refusal", "sensitive": "refusal", "": "end_turn"}
	got = map[string]string{}
	for f := range stops {
		got[f] = StopReason(f)
	}
	if diff := cmp.Diff(stops, got); diff != "" {
		t.Errorf("StopReason (-want +got):\n%s", diff)
	}
}

// sseStream is the client's stream over recorded event text.
func sseStream(events string) *stream {
	body := io.NopCloser(strings.NewReader(events))
	return &stream{c: &Client{Name: "claude", APIKey: "sk-ant-test"}, body: body, r: sse.NewReader(body), created: 1}
}

func ev(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }

func TestStream(t *testing.T) {
	start := ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],`+
		`"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}}`)
	chunk := func(d llm.Delta, finish *string) llm.ChatChunk {
		return llm.ChatChunk{ID: "msg_1", Object: "chat.completion.chunk", Created: 1, Model: "claude",
			Choices: []llm.ChunkChoice{{Delta: d, FinishReason: finish}}}
	}
	usage := func(u llm.Usage) llm.ChatChunk {
		return llm.ChatChunk{ID: "msg_1", Object: "chat.completion.chunk", Created: 1, Model: "claude", Choices: []llm.ChunkChoice{}, Usage: &u}
	}
	roleChunk := chunk(llm.Delta{Role: "assistant", Content: llm.Ptr("")}, nil)
	dialecttest.RunStream(t, func(events string) provider.ChatStream { return sseStream(events) }, []dialecttest.StreamCase{{
		Name: "thinking, text, two tool calls, usage with cache",
		Events: start + ev("ping", `{"type":"ping"}`) +
			ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`) +
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"let me see"}}`) +
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}`) +
			ev("content_block_stop", `{"type":"content_block_stop","index":0}`) +
			ev("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`) +
			ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking."}}`) +
			ev("content_block_start", `{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_a","name":"weather","input":{}}}`) +
			ev("content_block_delta", `{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`) +
			ev("content_block_start", `{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_b","name":"time","input":{}}}`) +
			ev("content_block_delta", `{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"Hangzhou\"}"}}`) +
			ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}`) +
			ev("message_stop", `{"type":"message_stop"}`),
		Want: []llm.ChatChunk{roleChunk,
			chunk(llm.Delta{ReasoningContent: llm.Ptr("let me see")}, nil),
			chunk(llm.Delta{Content: llm.Ptr("Checking.")}, nil),
			chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(0), ID: "toolu_a", Type: "function", Function: llm.FunctionCall{Name: "weather"}}}}, nil),
			chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(0), Function: llm.FunctionCall{Arguments: `{"city":`}}}}, nil),
			chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(1), ID: "toolu_b", Type: "function", Function: llm.FunctionCall{Name: "time"}}}}, nil),
			chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(0), Function: llm.FunctionCall{Arguments: `"Hangzhou"}`}}}}, nil),
			chunk(llm.Delta{}, llm.Ptr("tool_calls")),
			usage(llm.Usage{PromptTokens: 130, CompletionTokens: 42, TotalTokens: 172,
				PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 100, CacheWriteTokens: 20},
				Raw:                 json.RawMessage(`{"output_tokens":42}`)}),
		},
	}, {
		Name: "message_delta repeating the input side replaces it",
		Events: start + ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`) +
			ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":12,"output_tokens":7,"cache_read_input_tokens":50}}`) +
			ev("message_stop", `{"type":"message_stop"}`),
		Want: []llm.ChatChunk{roleChunk, chunk(llm.Delta{Content: llm.Ptr("Hi")}, nil), chunk(llm.Delta{}, llm.Ptr("length")),
			usage(llm.Usage{PromptTokens: 82, CompletionTokens: 7, TotalTokens: 89,
				PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 50, CacheWriteTokens: 20},
				Raw:                 json.RawMessage(`{"input_tokens":12,"output_tokens":7,"cache_read_input_tokens":50}`)}),
		},
	}, {
		Name:    "an overloaded error event mid-stream",
		Events:  start + ev("error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`),
		Want:    []llm.ChatChunk{roleChunk},
		WantErr: &errView{Kind: provider.KindOverloaded, Code: "overloaded_error", Provider: "claude", Status: http.StatusOK},
	}, {
		Name:    "an api_error event is an upstream failure",
		Events:  start + ev("error", `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`),
		Want:    []llm.ChatChunk{roleChunk},
		WantErr: &errView{Kind: provider.KindUpstream, Code: "api_error", Provider: "claude", Status: http.StatusOK},
	}, {
		Name:    "an error event without details",
		Events:  start + ev("error", `{"type":"error"}`),
		Want:    []llm.ChatChunk{roleChunk},
		WantErr: &errView{Kind: provider.KindUpstream, Code: "api_error", Provider: "claude", Status: http.StatusOK},
	}, {
		Name:    "ended before message_stop",
		Events:  start + ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`),
		Want:    []llm.ChatChunk{roleChunk, chunk(llm.Delta{Content: llm.Ptr("Hi")}, nil)},
		WantErr: &errView{Kind: provider.KindUnavailable, Provider: "claude"},
	}, {
		Name:    "malformed event",
		Events:  start + "data: {not json\n\n",
		Want:    []llm.ChatChunk{roleChunk},
		WantErr: &errView{Kind: provider.KindBadResponse},
	}})
}

func TestFail(t *testing.T) {
	errBody := func(typ, msg string) string {
		return `{"type":"error","error":{"type":"` + typ + `","message":"` + msg + `"},"request_id":"req_1"}`
	}
	dialecttest.RunFail(t, "claude", (&Client{Name: "claude", APIKey: "sk-ant-test"}).fail, []dialecttest.FailCase{
		failCase("overloaded 529", 529, "", errBody("overloaded_error", "Overloaded"), errView{Kind: provider.KindOverloaded, Code: "overloaded_error"}),
		failCase("rate limit with retry-after", 429, "7", errBody("rate_limit_error", "slow down"),
			errView{Kind: provider.KindRateLimited, Code: "rate_limit_error", RetryAfter: 7 * time.Second}),
		failCase("bad key", 401, "", errBody("authentication_error", "invalid x-api-key"), errView{Kind: provider.KindUpstreamAuth, Code: "authentication_error"}),
		failCase("a 401 stays a credential failure whatever its type", 401, "", errBody("rate_limit_error", "?"), errView{Kind: provider.KindUpstreamAuth, Code: "rate_limit_error"}),
		failCase("permission", 403, "", errBody("permission_error", "no"), errView{Kind: provider.KindUpstreamAuth, Code: "permission_error"}),
		failCase("billing", 402, "", errBody("billing_error", "credit"), errView{Kind: provider.KindQuotaExceeded, Code: "billing_error"}),
		failCase("billing behind a 400", 400, "", errBody("billing_error", "Your credit balance is too low"), errView{Kind: provider.KindQuotaExceeded, Code: "billing_error"}),
		failCase("prompt too long", 400, "", errBody("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
			errView{Kind: provider.KindContextLength, Code: "invalid_request_error"}),
		failCase("plain invalid request", 400, "", errBody("invalid_request_error", "max_tokens: Field required"),
			errView{Kind: provider.KindInvalidRequest, Code: "invalid_request_error"}),
		failCase("unknown model", 404, "", errBody("not_found_error", "model: claude-x"), errView{Kind: provider.KindNotFound, Code: "not_found_error"}),
		failCase("too large", 413, "", errBody("request_too_large", "too big"), errView{Kind: provider.KindTooLarge, Code: "request_too_large"}),
		failCase("api error", 500, "", errBody("api_error", "oops"), errView{Kind: provider.KindUpstream, Code: "api_error"}),
		failCase("a proxy's html page", 502, "", "<html>Bad Gateway</html>", errView{Kind: provider.KindUpstream}),
	})
}
