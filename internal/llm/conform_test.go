package llm

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm/openaispec"
)

// TestBuiltAnswersMatchSpec: answers tidegate builds itself (translated
// from another dialect, or the sim's) are in OpenAI's published shape.
func TestBuiltAnswersMatchSpec(t *testing.T) {
	tests := []struct {
		name      string
		component string
		v         any
	}{
		{"text answer", openaispec.ChatCompletion, &ChatResponse{ID: "c", Object: "chat.completion", Created: 1, Model: "m",
			Choices: []Choice{{Message: Message{Role: "assistant", Content: TextContent("hi")}, FinishReason: FinishStop}},
			Usage:   &Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2}}},
		{"tool call, no content", openaispec.ChatCompletion, &ChatResponse{ID: "c", Object: "chat.completion", Created: 1, Model: "m",
			Choices: []Choice{{Message: Message{Role: "assistant", ToolCalls: []ToolCall{{ID: "call_1", Type: "function",
				Function: FunctionCall{Name: "f", Arguments: "{}"}}}}, FinishReason: FinishToolCalls}}}},
		{"refusal and logprobs", openaispec.ChatCompletion, &ChatResponse{ID: "c", Object: "chat.completion", Created: 1, Model: "m",
			Choices: []Choice{{Message: Message{Role: "assistant", Refusal: "no"}, FinishReason: FinishStop,
				Logprobs: json.RawMessage(`{"content":null,"refusal":[{"token":"no","logprob":-0.1,"bytes":[110,111],"top_logprobs":[]}]}`)}}}},
		{"image answer", openaispec.Images, &ImageResponse{Created: 1, Data: []ImageData{{B64JSON: "AA=="}},
			Usage: &ImageUsage{TotalTokens: 3, InputTokens: 1, OutputTokens: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if err := openaispec.Validate(tt.component, b); err != nil {
				t.Errorf("%s: %v", b, err)
			}
		})
	}
}

func TestChoiceRefusalRoundTrips(t *testing.T) {
	in := Choice{Message: Message{Role: "assistant", Refusal: "I cannot."}, FinishReason: FinishStop}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Choice
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	in.Logprobs = json.RawMessage("null")
	if d := cmp.Diff(in, out); d != "" {
		t.Errorf("%s (-want +got):\n%s", b, d)
	}
}

// TestImageResponseKeepsFields: a relayed image answer keeps what OpenAI's
// GPT image models send, members tidegate does not know included.
func TestImageResponseKeepsFields(t *testing.T) {
	in := `{"created":1,"data":[{"b64_json":"AA=="}],"background":"opaque","output_format":"webp","quality":"low","size":"1536x1024",` +
		`"usage":{"total_tokens":9,"input_tokens":4,"output_tokens":5,"input_tokens_details":{"text_tokens":3,"image_tokens":1},` +
		`"output_tokens_details":{"text_tokens":0,"image_tokens":5}},"x_vendor":{"a":1}}`
	var r ImageResponse
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	_ = json.Unmarshal([]byte(in), &want)
	_ = json.Unmarshal(out, &got)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("relay changed the answer (-want +got):\n%s", d)
	}
}

func TestConformChatResponse(t *testing.T) {
	tests := []struct {
		name, in, want string
		same           bool // want the very bytes back
	}{
		{"vendor answer without logprobs and refusal",
			`{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"x_vendor":1}`,
			`{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},"finish_reason":"stop","logprobs":null}],"x_vendor":1}`, false},
		{"nulls where the spec wants values",
			`{"id":"x","object":"chat.completion","created":1,"model":"m","system_fingerprint":null,"choices":[{"index":0,"logprobs":null,"message":{"role":"assistant","content":"hi","refusal":null,"tool_calls":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"prompt_tokens_details":null,"completion_tokens_details":null}}`,
			`{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"logprobs":null,"message":{"role":"assistant","content":"hi","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, false},
		{"already in shape: the same bytes",
			`{"id":"x", "object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"logprobs":null,"message":{"role":"assistant","content":"hi","refusal":null},"finish_reason":"stop"}]}`,
			`{"id":"x", "object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"logprobs":null,"message":{"role":"assistant","content":"hi","refusal":null},"finish_reason":"stop"}]}`, true},
		{"not an object", `[1]`, `[1]`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ConformChatResponse([]byte(tt.in))
			if !tt.same {
				if err := openaispec.Validate(openaispec.ChatCompletion, got); err != nil {
					t.Errorf("%s: %v", got, err)
				}
				var w, g any
				_ = json.Unmarshal([]byte(tt.want), &w)
				_ = json.Unmarshal(got, &g)
				if d := cmp.Diff(w, g); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
				return
			}
			if d := cmp.Diff(tt.want, string(got)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestHasNullMember(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`{"system_fingerprint":null}`, true},
		{`{"a":1, "system_fingerprint" :  null}`, true},
		{`{"system_fingerprint":"fp"}`, false},
		{`{"x":"system_fingerprint","system_fingerprint":"null"}`, false},
		{`{"other":null}`, false},
	}
	for _, tt := range tests {
		if got := HasNullMember([]byte(tt.in), "system_fingerprint"); got != tt.want {
			t.Errorf("HasNullMember(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// BenchmarkHasNullMember: the scan every relayed stream chunk now passes.
func BenchmarkHasNullMember(b *testing.B) {
	chunk := []byte(`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}`)
	for b.Loop() {
		if HasNullMember(chunk, "system_fingerprint") {
			b.Fatal("no null system_fingerprint in the chunk")
		}
	}
}
