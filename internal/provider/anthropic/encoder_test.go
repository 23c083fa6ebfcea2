package anthropic

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// recorder keeps each event as "name data" with the data's JSON.
type recorder []string

func (r *recorder) emit(event string, data any) error {
	b, err := json.Marshal(data)
	*r = append(*r, event+" "+string(b))
	return err
}

func oaChunk(d llm.Delta, finish *string) *llm.ChatChunk {
	return &llm.ChatChunk{ID: "chatcmpl-1", Model: "m", Choices: []llm.ChunkChoice{{Delta: d, FinishReason: finish}}}
}

// The events every encoded stream starts and ends with.
const (
	encStart = `message_start {"type":"message_start","message":{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"m",` +
		`"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}`
	encPing = `ping {"type":"ping"}`
	encStop = `message_stop {"type":"message_stop"}`
)

func TestStreamEncoder(t *testing.T) {
	call := func(i int, id, name, args string) llm.ToolCall {
		return llm.ToolCall{Index: llm.Ptr(i), ID: id, Type: "function", Function: llm.FunctionCall{Name: name, Arguments: args}}
	}
	tests := []struct {
		name   string
		chunks []*llm.ChatChunk
		want   []string
	}{{
		name: "reasoning then text, usage with cache, finish stop",
		chunks: []*llm.ChatChunk{
			oaChunk(llm.Delta{Role: "assistant", Content: llm.Ptr("")}, nil),
			oaChunk(llm.Delta{ReasoningContent: llm.Ptr("hmm")}, nil),
			oaChunk(llm.Delta{ReasoningContent: llm.Ptr("…")}, nil),
			oaChunk(llm.Delta{Content: llm.Ptr("Hi")}, nil),
			oaChunk(llm.Delta{}, llm.Ptr("stop")),
			{ID: "chatcmpl-1", Model: "m", Choices: []llm.ChunkChoice{}, Usage: &llm.Usage{PromptTokens: 130, CompletionTokens: 5,
				PromptTokensDetails: &llm.PromptTokensDetails{CachedTokens: 100, CacheWriteTokens: 20}}},
		},
		want: []string{encStart, encPing,
			`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}`,
			`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}`,
			`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"…"}}`,
			`content_block_stop {"index":0,"type":"content_block_stop"}`,
			`content_block_start {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`,
			`content_block_delta {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}`,
			`content_block_stop {"index":1,"type":"content_block_stop"}`,
			`message_delta {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},` +
				`"usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":20,"cache_read_input_tokens":100}}`,
			encStop},
	}, {
		name: "text then two tool calls streamed in pieces, finish tool_calls",
		chunks: []*llm.ChatChunk{
			oaChunk(llm.Delta{Content: llm.Ptr("Checking.")}, nil),
			oaChunk(llm.Delta{ToolCalls: []llm.ToolCall{call(0, "call_a", "weather", "")}}, nil),
			oaChunk(llm.Delta{ToolCalls: []llm.ToolCall{call(0, "", "", `{"city":`)}}, nil),
			oaChunk(llm.Delta{ToolCalls: []llm.ToolCall{call(0, "", "", `"Hangzhou"}`)}}, nil),
			oaChunk(llm.Delta{ToolCalls: []llm.ToolCall{call(1, "call_b", "time", `{}`)}}, nil),
			oaChunk(llm.Delta{}, llm.Ptr("tool_calls")),
		},
		want: []string{encStart, encPing,
			`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
			`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}`,
			`content_block_stop {"index":0,"type":"content_block_stop"}`,
			`content_block_start {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_call_a","name":"weather","input":{}}}`,
			`content_block_delta {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`,
			`content_block_delta {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Hangzhou\"}"}}`,
			`content_block_stop {"index":1,"type":"content_block_stop"}`,
			`content_block_start {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_call_b","name":"time","input":{}}}`,
			`content_block_delta {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}`,
			`content_block_stop {"index":2,"type":"content_block_stop"}`,
			`message_delta {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},` +
				`"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`,
			encStop},
	}, {
		name: "only choice 0 is encoded; length is max_tokens",
		chunks: []*llm.ChatChunk{
			{ID: "chatcmpl-1", Model: "m", Choices: []llm.ChunkChoice{{Index: 1, Delta: llm.Delta{Content: llm.Ptr("other")}, FinishReason: llm.Ptr("stop")},
				{Delta: llm.Delta{Content: llm.Ptr("Hel")}, FinishReason: llm.Ptr("length")}}},
		},
		want: []string{encStart, encPing,
			`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
			`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}`,
			`content_block_stop {"index":0,"type":"content_block_stop"}`,
			`message_delta {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},` +
				`"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`,
			encStop},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got recorder
			enc := NewStreamEncoder(got.emit)
			for _, c := range tt.chunks {
				if err := enc.Chunk(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := enc.Finish(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, []string(got)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreamEncoderFail(t *testing.T) {
	var got recorder
	enc := NewStreamEncoder(got.emit)
	if err := enc.Chunk(oaChunk(llm.Delta{Content: llm.Ptr("Hi")}, nil)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Fail(&provider.Error{Kind: provider.KindOverloaded, Provider: "p", Message: "busy"}); err != nil {
		t.Fatal(err)
	}
	// No content_block_stop, message_delta or message_stop: the client must see a broken stream.
	want := []string{encStart, encPing,
		`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`,
		`error {"type":"error","error":{"type":"overloaded_error","message":"p: busy"}}`}
	if diff := cmp.Diff(want, []string(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestStreamEncoderStopsOnEmitError(t *testing.T) {
	broken := errors.New("client gone")
	calls := 0
	enc := NewStreamEncoder(func(string, any) error { calls++; return broken })
	if err := enc.Chunk(oaChunk(llm.Delta{Content: llm.Ptr("Hi")}, nil)); !errors.Is(err, broken) {
		t.Fatalf("Chunk error = %v, want %v", err, broken)
	}
	if calls != 1 {
		t.Errorf("emitted %d events after the first failed, want 1 in all", calls)
	}
}
