package anthropic_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/anthropic"
)

func messagesRequest(t *testing.T, body string) *anthropic.MessagesRequest {
	t.Helper()
	var mr anthropic.MessagesRequest
	if err := json.Unmarshal([]byte(body), &mr); err != nil {
		t.Fatal(err)
	}
	return &mr
}

// What a chat request cannot carry is refused, naming the field, with a
// kind that lets the plan go on to a native target.
func TestToChatRequestRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body, param string
	}{
		{"document", string(fixture(t, "native_request.document.json")), "messages.0.content.0.type"},
		{"image in a tool result", string(fixture(t, "native_request.thinking_tool.json")), "messages.2.content.0.content"},
		{"server tool", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, "tools.0.type"},
		{"container", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"container":"cntr_1"}`, "container"},
		{"unknown output_config", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"output_config":{"task_budget":5}}`, "output_config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := anthropic.ToChatRequest(messagesRequest(t, tc.body))
			e := provider.AsError(err)
			if err == nil || e.Kind != provider.KindUnsupported || e.Param != tc.param || e.Kind.Status() != 400 {
				t.Errorf("err = %#v, want unsupported naming %s", err, tc.param)
			}
		})
	}
}

func TestToChatRequestCarries(t *testing.T) {
	mr := messagesRequest(t, `{"model":"m","max_tokens":9,"top_k":5,
		"output_config":{"effort":"high","format":{"type":"json_schema","schema":{"type":"object"}}},
		"messages":[{"role":"user","content":"hi"},
			{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","is_error":true,"content":[{"type":"text","text":"boom"}]}]}]}`)
	req, err := anthropic.ToChatRequest(mr)
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		Effort, Format, TopK, Tool string
	}{req.ReasoningEffort, string(req.ResponseFormat.JSONSchema), string(req.Extra["top_k"]), req.Messages[2].Content.String()}
	want := struct {
		Effort, Format, TopK, Tool string
	}{"high", `{"name":"output","schema":{"type":"object"},"strict":true}`, "5", "Error: boom"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// The thinking budget fits under the client's max_tokens: raising
// max_tokens would spend past what the budget reservation held.
func TestFromChatRequestThinkingFits(t *testing.T) {
	for _, tc := range []struct {
		effort    string
		maxTokens int
		want      *anthropic.Thinking
	}{
		{"medium", 4000, &anthropic.Thinking{Type: "enabled", BudgetTokens: 3999}},
		{"low", 8000, &anthropic.Thinking{Type: "enabled", BudgetTokens: 1024}},
		{"high", 1000, nil}, // no room for Anthropic's smallest budget
	} {
		req := &llm.ChatRequest{Model: "m", MaxTokens: llm.Ptr(tc.maxTokens), ReasoningEffort: tc.effort,
			Messages: []llm.Message{{Role: "user", Content: llm.TextContent("hi")}}}
		mr, err := anthropic.FromChatRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if mr.MaxTokens != tc.maxTokens {
			t.Errorf("%s/%d: max_tokens raised to %d", tc.effort, tc.maxTokens, mr.MaxTokens)
		}
		if diff := cmp.Diff(tc.want, mr.Thinking); diff != "" {
			t.Errorf("%s/%d: thinking (-want +got):\n%s", tc.effort, tc.maxTokens, diff)
		}
	}
}

// A translated stream reads like Anthropic's: input tokens in
// message_start, stop_sequence in message_delta, toolu_ tool ids.
func TestStreamEncoderShape(t *testing.T) {
	var events []string
	enc := anthropic.NewStreamEncoder(func(name string, data any) error {
		b, _ := json.Marshal(data)
		events = append(events, name+" "+string(b))
		return nil
	})
	enc.InputTokens = 42
	chunks := []llm.ChatChunk{
		{ID: "c1", Model: "m", Choices: []llm.ChunkChoice{{Delta: llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(0), ID: "call_9", Function: llm.FunctionCall{Name: "f", Arguments: "{}"}}}}}}},
		{ID: "c1", Model: "m", Choices: []llm.ChunkChoice{{FinishReason: llm.Ptr("tool_calls")}}},
		{ID: "c1", Model: "m", Choices: []llm.ChunkChoice{}, Usage: &llm.Usage{PromptTokens: 40, CompletionTokens: 3}},
	}
	for i := range chunks {
		if err := enc.Chunk(&chunks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Finish(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(events, "\n")
	for _, want := range []string{
		`"usage":{"input_tokens":42,`,
		`"content_block":{"type":"tool_use","id":"toolu_call_9","name":"f","input":{}}`,
		`message_delta {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":40,"output_tokens":3,`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("events lack %s:\n%s", want, all)
		}
	}
	resp := anthropic.FromChatResponse(&llm.ChatResponse{ID: "x", Choices: []llm.Choice{{Message: llm.Message{Role: "assistant",
		ToolCalls: []llm.ToolCall{{ID: "call_9", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: "{}"}}}}, FinishReason: "tool_calls"}}})
	if resp.Content[0].ID != "toolu_call_9" {
		t.Errorf("tool id = %q", resp.Content[0].ID)
	}
}
