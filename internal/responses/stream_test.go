package responses

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
)

// eventSchemas names each event's schema in OpenAI's spec.
var eventSchemas = map[string]string{
	EventCreated: "ResponseCreatedEvent", EventInProgress: "ResponseInProgressEvent",
	EventItemAdded: "ResponseOutputItemAddedEvent", EventItemDone: "ResponseOutputItemDoneEvent",
	EventPartAdded: "ResponseContentPartAddedEvent", EventPartDone: "ResponseContentPartDoneEvent",
	EventTextDelta: "ResponseTextDeltaEvent", EventTextDone: "ResponseTextDoneEvent",
	EventRefusalDelta: "ResponseRefusalDeltaEvent", EventRefusalDone: "ResponseRefusalDoneEvent",
	EventReasoningDelta: "ResponseReasoningTextDeltaEvent", EventReasoningDone: "ResponseReasoningTextDoneEvent",
	EventArgumentsDelta: "ResponseFunctionCallArgumentsDeltaEvent", EventArgumentsDone: "ResponseFunctionCallArgumentsDoneEvent",
	EventCompleted: "ResponseCompletedEvent", EventIncomplete: "ResponseIncompleteEvent", EventFailed: "ResponseFailedEvent",
}

type recorded struct {
	name string
	data []byte
}

func delta(d llm.Delta, finish string) llm.ChatChunk {
	c := llm.ChatChunk{ID: "c1", Object: "chat.completion.chunk", Model: "sim-fast", Choices: []llm.ChunkChoice{{Delta: d}}}
	if finish != "" {
		c.Choices[0].FinishReason = &finish
	}
	return c
}

func content(s string) llm.Delta   { return llm.Delta{Content: &s} }
func reasoning(s string) llm.Delta { return llm.Delta{ReasoningContent: &s} }
func refusal(s string) llm.Delta   { return llm.Delta{Refusal: &s} }
func call(i int, id, name, args string) llm.Delta {
	return llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(i), ID: id, Function: llm.FunctionCall{Name: name, Arguments: args}}}}
}

func TestStreamEncoder(t *testing.T) {
	usage := llm.ChatChunk{ID: "c1", Model: "sim-fast", Choices: []llm.ChunkChoice{}, Usage: &llm.Usage{PromptTokens: 9, CompletionTokens: 4, TotalTokens: 13}}
	tests := []struct {
		name   string
		chunks []llm.ChatChunk
		fail   bool
		events string // the event names, in order
		// the whole answer as a chat response: the final response must be
		// what FromChat makes of it (ids aside)
		whole *llm.ChatResponse
	}{
		{
			name:   "text",
			chunks: []llm.ChatChunk{delta(llm.Delta{Role: "assistant"}, ""), delta(content("Hel"), ""), delta(content("lo"), ""), delta(llm.Delta{}, "stop"), usage},
			events: "created in_progress output_item.added content_part.added output_text.delta output_text.delta output_text.done content_part.done output_item.done completed",
			whole:  chatAnswer(llm.Message{Role: "assistant", Content: llm.TextContent("Hello")}, "stop", usage.Usage),
		},
		{
			name: "reasoning, text, then two tool calls",
			chunks: []llm.ChatChunk{delta(reasoning("Hmm."), ""), delta(content("Let me check."), ""),
				delta(call(0, "call_a", "f", ""), ""), delta(call(0, "", "", `{"x":`), ""), delta(call(0, "", "", `1}`), ""),
				delta(call(1, "call_b", "g", "{}"), ""), delta(llm.Delta{}, "tool_calls"), usage},
			events: "created in_progress output_item.added reasoning_text.delta reasoning_text.done output_item.done " +
				"output_item.added content_part.added output_text.delta output_text.done content_part.done output_item.done " +
				"output_item.added function_call_arguments.delta function_call_arguments.delta function_call_arguments.done output_item.done " +
				"output_item.added function_call_arguments.delta function_call_arguments.done output_item.done completed",
			whole: chatAnswer(llm.Message{Role: "assistant", Content: llm.TextContent("Let me check."), ReasoningContent: "Hmm.", ToolCalls: []llm.ToolCall{
				{ID: "call_a", Function: llm.FunctionCall{Name: "f", Arguments: `{"x":1}`}}, {ID: "call_b", Function: llm.FunctionCall{Name: "g", Arguments: "{}"}}}},
				"tool_calls", usage.Usage),
		},
		{
			name:   "a tool call with no arguments",
			chunks: []llm.ChatChunk{delta(call(0, "call_a", "f", ""), "tool_calls")},
			events: "created in_progress output_item.added function_call_arguments.done output_item.done completed",
			whole:  chatAnswer(llm.Message{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: "call_a", Function: llm.FunctionCall{Name: "f"}}}}, "tool_calls", nil),
		},
		{
			name:   "refusal",
			chunks: []llm.ChatChunk{delta(refusal("No."), "content_filter")},
			events: "created in_progress output_item.added content_part.added refusal.delta refusal.done content_part.done output_item.done incomplete",
			whole:  chatAnswer(llm.Message{Role: "assistant", Refusal: "No."}, "content_filter", nil),
		},
		{
			name:   "cut at the output limit",
			chunks: []llm.ChatChunk{delta(content("Once"), "length")},
			events: "created in_progress output_item.added content_part.added output_text.delta output_text.done content_part.done output_item.done incomplete",
			whole:  chatAnswer(llm.Message{Role: "assistant", Content: llm.TextContent("Once")}, "length", nil),
		},
		{
			name:   "broken after it started",
			chunks: []llm.ChatChunk{delta(content("Hel"), "")},
			fail:   true,
			events: "created in_progress output_item.added content_part.added output_text.delta failed",
		},
	}
	s := loadSchemas(t)
	req := decodeRequest(t, `{"model":"chat","input":"hi","stream":true}`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []recorded
			enc := NewStreamEncoder(Base(req, "resp_0", created), counter(), func(name string, v any) error {
				b, err := json.Marshal(v) // at once, as the SSE writer does
				got = append(got, recorded{name, b})
				return err
			})
			for i := range tc.chunks {
				if err := enc.Chunk(&tc.chunks[i]); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			if tc.fail {
				err = enc.Fail("server_error", "upstream broke")
			} else {
				err = enc.Finish(done)
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, ev := range got {
				names = append(names, strings.TrimPrefix(ev.name, "response."))
				var head struct {
					Type string `json:"type"`
					Seq  int    `json:"sequence_number"`
				}
				_ = json.Unmarshal(ev.data, &head)
				if head.Type != ev.name || head.Seq != i {
					t.Errorf("event %d: type %q sequence_number %d, want %q %d", i, head.Type, head.Seq, ev.name, i)
				}
				if errs := s.conform(eventSchemas[ev.name], ev.data); len(errs) > 0 {
					t.Errorf("event %d (%s) is not a %s per the spec: %v\n%s", i, ev.name, eventSchemas[ev.name], errs, ev.data)
				}
			}
			if d := cmp.Diff(tc.events, strings.Join(names, " ")); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			final := enc.Response()
			if tc.fail {
				if final.Status != StatusFailed || final.Error == nil || final.Error.Code != "server_error" {
					t.Errorf("failed response: status %q error %+v", final.Status, final.Error)
				}
				return
			}
			want := FromChat(Base(req, "resp_0", created), tc.whole, counter(), done)
			ignoreIDs := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".ID" && len(p) > 2 }, cmp.Ignore())
			if d := cmp.Diff(want, final, ignoreIDs); d != "" {
				t.Errorf("final response differs from the whole answer's (-want +got):\n%s", d)
			}
			// The last event carries that same response.
			var last struct {
				Response json.RawMessage `json:"response"`
			}
			_ = json.Unmarshal(got[len(got)-1].data, &last)
			if b, _ := json.Marshal(final); string(b) != string(last.Response) {
				t.Errorf("last event's response\n%s\nwant\n%s", last.Response, b)
			}
		})
	}
}
