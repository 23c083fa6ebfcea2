package responses

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
)

// counter makes predictable ids: msg_1, fc_2, …
func counter() NewID {
	n := 0
	return func(prefix string) string {
		n++
		return fmt.Sprintf("%s_%d", prefix, n)
	}
}

var (
	created = time.Unix(1700000000, 0)
	done    = time.Unix(1700000003, 0)
)

func chatAnswer(m llm.Message, finish string, u *llm.Usage) *llm.ChatResponse {
	return &llm.ChatResponse{ID: "chatcmpl-1", Object: "chat.completion", Model: "sim-fast",
		Choices: []llm.Choice{{Message: m, FinishReason: finish}}, Usage: u}
}

func TestFromChat(t *testing.T) {
	usage := &llm.Usage{PromptTokens: 20, CompletionTokens: 7, TotalTokens: 27,
		PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 8, CacheWriteTokens: 2}, CompletionTokensDetails: &llm.CompletionTokensDetails{ReasoningTokens: 3}}
	tests := []struct {
		name   string
		answer *llm.ChatResponse
		want   string // output, status, incomplete_details and usage of the response
	}{
		{
			name:   "text",
			answer: chatAnswer(llm.Message{Role: "assistant", Content: llm.TextContent("Hi!")}, "stop", usage),
			want: `{"status":"completed","incomplete_details":null,"output":[
				{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi!","annotations":[],"logprobs":[]}]}],
				"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":8,"cache_write_tokens":2},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":27}}`,
		},
		{
			name: "reasoning, then tool calls and no text",
			answer: chatAnswer(llm.Message{Role: "assistant", ReasoningContent: "Think.", ToolCalls: []llm.ToolCall{
				{ID: "call_a", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: `{"x":1}`}},
				{ID: "call_b", Type: "function", Function: llm.FunctionCall{Name: "g", Arguments: `{}`}}}}, "tool_calls", nil),
			want: `{"status":"completed","incomplete_details":null,"output":[
				{"type":"reasoning","id":"rs_1","content":[{"type":"reasoning_text","text":"Think."}],"summary":[]},
				{"type":"function_call","id":"fc_2","status":"completed","call_id":"call_a","name":"f","arguments":"{\"x\":1}"},
				{"type":"function_call","id":"fc_3","status":"completed","call_id":"call_b","name":"g","arguments":"{}"}]}`,
		},
		{
			name:   "cut at the output limit",
			answer: chatAnswer(llm.Message{Role: "assistant", Content: llm.TextContent("Once upon")}, "length", &llm.Usage{PromptTokens: 5, CompletionTokens: 2}),
			want: `{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[
				{"type":"message","id":"msg_1","status":"incomplete","role":"assistant","content":[{"type":"output_text","text":"Once upon","annotations":[],"logprobs":[]}]}],
				"usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":7}}`,
		},
		{
			name:   "refused by a filter",
			answer: chatAnswer(llm.Message{Role: "assistant", Refusal: "I can't."}, "content_filter", nil),
			want: `{"status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":[
				{"type":"message","id":"msg_1","status":"incomplete","role":"assistant","content":[{"type":"refusal","refusal":"I can't."}]}]}`,
		},
		{
			name:   "empty answer: one empty message",
			answer: chatAnswer(llm.Message{Role: "assistant"}, "stop", nil),
			want: `{"status":"completed","incomplete_details":null,"output":[
				{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[]}]}`,
		},
	}
	s := loadSchemas(t)
	req := decodeRequest(t, `{"model":"chat","input":"hi"}`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := FromChat(Base(req, "resp_0", created), tc.answer, counter(), done)
			b, err := json.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			if errs := s.conform("Response", b); len(errs) > 0 {
				t.Errorf("not a Response per the spec: %v\n%s", errs, b)
			}
			var got, want map[string]any
			_ = json.Unmarshal(b, &got)
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			for k := range want {
				if d := cmp.Diff(want[k], got[k]); d != "" {
					t.Errorf("%s (-want +got):\n%s", k, d)
				}
			}
			if got["model"] != "sim-fast" || got["id"] != "resp_0" || got["object"] != "response" {
				t.Errorf("model %v id %v object %v", got["model"], got["id"], got["object"])
			}
			if (got["status"] == StatusCompleted) != (got["completed_at"] == float64(done.Unix())) {
				t.Errorf("completed_at = %v with status %v", got["completed_at"], got["status"])
			}
		})
	}
}

// TestBaseEchoesTheRequest: a response repeats the settings it was made
// with, OpenAI's defaults where the request left them out.
func TestBaseEchoesTheRequest(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"defaults", `{"model":"chat","input":"hi"}`,
			`{"id":"resp_0","object":"response","created_at":1700000000,"status":"in_progress","completed_at":null,"error":null,
			"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"chat","output":[],"parallel_tool_calls":true,
			"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"temperature":null,
			"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled","metadata":{}}`},
		{"every setting", `{"model":"chat","input":"hi","instructions":"Be brief.","max_output_tokens":9,"parallel_tool_calls":false,
			"previous_response_id":"resp_prev","reasoning":{"effort":"high"},"store":false,"temperature":0.2,"top_p":0.5,"user":"u",
			"metadata":{"a":"b"},"tool_choice":"required","tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],
			"text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"},"strict":true}}}`,
			`{"id":"resp_0","object":"response","created_at":1700000000,"status":"in_progress","completed_at":null,"error":null,
			"incomplete_details":null,"instructions":"Be brief.","max_output_tokens":9,"model":"chat","output":[],"parallel_tool_calls":false,
			"previous_response_id":"resp_prev","reasoning":{"effort":"high","summary":null},"temperature":0.2,
			"text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"},"strict":true}},"tool_choice":"required",
			"tools":[{"type":"function","name":"f","description":null,"parameters":{"type":"object"},"strict":null}],"top_p":0.5,
			"truncation":"disabled","user":"u","metadata":{"a":"b"}}`},
	}
	s := loadSchemas(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(Base(decodeRequest(t, tc.body), "resp_0", created))
			if errs := s.conform("Response", b); len(errs) > 0 {
				t.Errorf("not a Response per the spec: %v", errs)
			}
			var got, want any
			_ = json.Unmarshal(b, &got)
			_ = json.Unmarshal([]byte(tc.want), &want)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
