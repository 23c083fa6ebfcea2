package anthropic

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/dialecttest"
)

// decode reads a Messages request as the /v1/messages handler does.
func decode(t *testing.T, body string) *MessagesRequest {
	t.Helper()
	var mr MessagesRequest
	if err := json.Unmarshal([]byte(body), &mr); err != nil {
		t.Fatal(err)
	}
	return &mr
}

func TestToChatRequest(t *testing.T) {
	weather := llm.Tool{Type: "function", Function: llm.ToolFunction{Name: "weather", Parameters: json.RawMessage(`{"type":"object"}`)}}
	tests := []struct {
		name string
		body string
		want llm.ChatRequest
	}{{
		name: "string system and content, sampling, stop, top_k, user",
		body: `{"model":"chat","max_tokens":100,"system":"be terse","temperature":0.5,"top_p":0.9,"top_k":40,
			"stop_sequences":["END"],"metadata":{"user_id":"u1"},"messages":[{"role":"user","content":"hi"}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(100), Temperature: llm.Ptr(0.5), TopP: llm.Ptr(0.9),
			Stop: llm.Stop{"END"}, User: "u1", Extra: map[string]json.RawMessage{"top_k": json.RawMessage("40")},
			Messages: []llm.Message{{Role: "system", Content: llm.TextContent("be terse")}, user("hi")}},
	}, {
		name: "system blocks joined, streaming asks for usage",
		body: `{"model":"chat","max_tokens":1,"stream":true,"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b"}],
			"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(1), Stream: true, StreamOptions: &llm.StreamOptions{IncludeUsage: true},
			Messages: []llm.Message{{Role: "system", Content: llm.TextContent("a\n\nb")}, user("hi")}},
	}, {
		name: "thinking budget becomes an effort",
		body: `{"model":"chat","max_tokens":9000,"thinking":{"type":"enabled","budget_tokens":4096},"messages":[{"role":"user","content":"hi"}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(9000), ReasoningEffort: "medium", Messages: []llm.Message{user("hi")}},
	}, {
		name: "disabled thinking asks for nothing",
		body: `{"model":"chat","max_tokens":9,"thinking":{"type":"disabled"},"messages":[{"role":"user","content":"hi"}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(9), Messages: []llm.Message{user("hi")}},
	}, {
		name: "tools with a named choice and no parallel use",
		body: `{"model":"chat","max_tokens":9,"tools":[{"name":"weather","input_schema":{"type":"object"}}],
			"tool_choice":{"type":"tool","name":"weather","disable_parallel_tool_use":true},"messages":[{"role":"user","content":"hi"}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(9), Tools: []llm.Tool{weather},
			ToolChoice: json.RawMessage(`{"function":{"name":"weather"},"type":"function"}`), ParallelToolCalls: llm.Ptr(false),
			Messages: []llm.Message{user("hi")}},
	}, {
		name: "tool choice any is required",
		body: `{"model":"chat","max_tokens":9,"tools":[{"name":"weather","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"},
			"messages":[{"role":"user","content":"hi"}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(9), Tools: []llm.Tool{weather}, ToolChoice: json.RawMessage(`"required"`),
			Messages: []llm.Message{user("hi")}},
	}, {
		name: "a tool choice without tools is dropped",
		body: `{"model":"chat","max_tokens":9,"tool_choice":{"type":"any"},"messages":[{"role":"user","content":"hi"}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(9), Messages: []llm.Message{user("hi")}},
	}, {
		name: "tool round trip: thinking and tool_use back to OpenAI, results first, then the user's text and image",
		body: `{"model":"chat","max_tokens":9,"messages":[
			{"role":"user","content":"weather?"},
			{"role":"assistant","content":[{"type":"thinking","thinking":"need a tool","signature":"s"},
				{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city": "Hangzhou"}},
				{"type":"tool_use","id":"toolu_2","name":"weather","input":{}}]},
			{"role":"user","content":[{"type":"text","text":"and this?"},
				{"type":"tool_result","tool_use_id":"toolu_1","content":"21C"},
				{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
				{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}}]}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(9), Messages: []llm.Message{
			user("weather?"),
			{Role: "assistant", ReasoningContent: "need a tool", ToolCalls: []llm.ToolCall{
				{ID: "toolu_1", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":"Hangzhou"}`}},
				{ID: "toolu_2", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{}`}}}},
			{Role: "tool", ToolCallID: "toolu_1", Content: llm.TextContent("21C")},
			{Role: "tool", ToolCallID: "toolu_2", Content: llm.TextContent("a\nb")},
			{Role: "user", Content: llm.Content{Set: true, Parts: []llm.ContentPart{{Type: "text", Text: "and this?"},
				{Type: "image_url", ImageURL: &llm.ImageURL{URL: "data:image/png;base64,iVBOR"}}}}},
		}},
	}, {
		name: "assistant text blocks are joined",
		body: `{"model":"chat","max_tokens":9,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`,
		want: llm.ChatRequest{Model: "chat", MaxTokens: llm.Ptr(9), Messages: []llm.Message{user("hi"),
			{Role: "assistant", Content: llm.TextContent("ab")}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ToChatRequest(decode(t, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("ToChatRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestThinkingEffort(t *testing.T) {
	want := map[int]string{1024: "low", 2047: "low", 2048: "medium", 8191: "medium", 8192: "high", 32000: "high"}
	got := map[int]string{}
	for budget := range want {
		mr := &MessagesRequest{Thinking: &Thinking{Type: "enabled", BudgetTokens: budget}}
		req, err := ToChatRequest(mr)
		if err != nil {
			t.Fatal(err)
		}
		got[budget] = req.ReasoningEffort
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("effort by budget (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantParam string // "" when valid
	}{
		{"valid", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`, ""},
		{"no model", `{"max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{"no messages", `{"model":"m","max_tokens":1,"messages":[]}`, "messages"},
		{"system role in messages", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"hi"}]}`, "messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decode(t, tt.body).Validate()
			if tt.wantParam == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if diff := cmp.Diff(&errView{Kind: provider.KindInvalidRequest, Code: "invalid_value", Param: tt.wantParam}, dialecttest.View(err)); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromChatResponse(t *testing.T) {
	end := func(s string) *string { return &s }
	tests := []struct {
		name string
		in   llm.ChatResponse
		want MessagesResponse
	}{{
		name: "reasoning, text and tools in Anthropic's order; cached tokens leave input_tokens",
		in: llm.ChatResponse{ID: "chatcmpl-1", Model: "deepseek-chat", Choices: []llm.Choice{{FinishReason: "tool_calls",
			Message: llm.Message{Role: "assistant", Content: llm.TextContent("Checking."), ReasoningContent: "hmm",
				ToolCalls: []llm.ToolCall{{ID: "call_1", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":"Hangzhou"}`}},
					{ID: "call_2", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":`}}}}}},
			Usage: &llm.Usage{PromptTokens: 130, CompletionTokens: 5, TotalTokens: 135,
				PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 100, CacheWriteTokens: 20}}},
		want: MessagesResponse{ID: "msg_chatcmpl-1", Type: "message", Role: "assistant", Model: "deepseek-chat", StopReason: end("tool_use"),
			Content: []Block{{Type: "thinking", Thinking: "hmm"}, text("Checking."),
				{Type: "tool_use", ID: "toolu_call_1", Name: "weather", Input: json.RawMessage(`{"city":"Hangzhou"}`)},
				{Type: "tool_use", ID: "toolu_call_2", Name: "weather", Input: json.RawMessage(`{}`)}},
			Usage: Usage{InputTokens: 10, OutputTokens: 5, CacheReadInputTokens: 100, CacheCreationInputTokens: 20}},
	}, {
		name: "length, id kept, no usage",
		in: llm.ChatResponse{ID: "msg_abc", Model: "m", Choices: []llm.Choice{{FinishReason: "length",
			Message: llm.Message{Role: "assistant", Content: llm.TextContent("Hel")}}}},
		want: MessagesResponse{ID: "msg_abc", Type: "message", Role: "assistant", Model: "m", StopReason: end("max_tokens"),
			Content: []Block{text("Hel")}},
	}, {
		name: "no choices",
		in:   llm.ChatResponse{ID: "x", Model: "m"},
		want: MessagesResponse{ID: "msg_x", Type: "message", Role: "assistant", Model: "m", StopReason: end("end_turn"), Content: []Block{}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(&tt.want, FromChatResponse(&tt.in)); diff != "" {
				t.Errorf("FromChatResponse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUsageRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		wire  Usage
		norm  *llm.Usage
		back  Usage // what AnthropicUsage gives for norm
		guard bool  // norm is not ChatUsage(wire): a malformed upstream
	}{
		{name: "no cache", wire: Usage{InputTokens: 10, OutputTokens: 5},
			norm: &llm.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15}, back: Usage{InputTokens: 10, OutputTokens: 5}},
		{name: "reads and writes", wire: Usage{InputTokens: 10, OutputTokens: 5, CacheReadInputTokens: 100, CacheCreationInputTokens: 20},
			norm: &llm.Usage{PromptTokens: 130, CompletionTokens: 5, TotalTokens: 135,
				PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 100, CacheWriteTokens: 20}},
			back: Usage{InputTokens: 10, OutputTokens: 5, CacheReadInputTokens: 100, CacheCreationInputTokens: 20}},
		{name: "cached count over the prompt never goes negative", guard: true,
			norm: &llm.Usage{PromptTokens: 5, PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 9}},
			back: Usage{CacheReadInputTokens: 9}},
		{name: "no usage", guard: true, back: Usage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.guard {
				if diff := cmp.Diff(tt.norm, ChatUsage(tt.wire)); diff != "" {
					t.Errorf("ChatUsage (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.back, AnthropicUsage(tt.norm)); diff != "" {
				t.Errorf("AnthropicUsage (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWireEncoding checks what Anthropic's API insists on in the bytes:
// text and thinking blocks carry their fields even when empty, tool_use an input object.
func TestWireEncoding(t *testing.T) {
	mr := MessagesRequest{Model: "m", MaxTokens: 1, Messages: []Message{{Role: "assistant", Content: Blocks{
		text(""), {Type: "thinking"}, {Type: "tool_use", ID: "t", Name: "n"},
		{Type: "image", Source: &Source{Type: "url", URL: "u"}},
	}}}}
	b, err := json.Marshal(mr)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"text","text":""},` +
		`{"type":"thinking","thinking":"","signature":""},{"type":"tool_use","id":"t","name":"n","input":{}},` +
		`{"type":"image","source":{"type":"url","url":"u"}}]}]}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("encoding (-want +got):\n%s", diff)
	}
}
