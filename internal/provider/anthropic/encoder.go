package anthropic

import (
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// Emit writes one Anthropic streaming event.
type Emit func(event string, data any) error

// StreamEncoder turns OpenAI chunks into Anthropic's event sequence:
// message_start, content blocks (start, deltas, stop), message_delta,
// message_stop. It holds the open block so kinds of output can interleave.
type StreamEncoder struct {
	// InputTokens is reported in message_start, where clients (LangChain)
	// read it: the upstream's count comes only at the end, so this is the
	// prompt's estimate; message_delta then carries the true usage.
	InputTokens int

	emit      Emit
	started   bool
	model     string
	id        string
	open      string // type of the open block, "" when none
	index     int    // index of the open block
	tools     map[int]int
	stop      string
	usage     *llm.Usage
	nextIndex int
}

func NewStreamEncoder(emit Emit) *StreamEncoder {
	return &StreamEncoder{emit: emit, tools: map[int]int{}}
}

func (e *StreamEncoder) start(c *llm.ChatChunk) error {
	if e.started {
		return nil
	}
	e.started = true
	e.id, e.model = MessageID(c.ID), c.Model
	msg := MessagesResponse{ID: e.id, Type: "message", Role: "assistant", Model: e.model, Content: []Block{},
		Usage: Usage{InputTokens: e.InputTokens}}
	if err := e.emit("message_start", streamEvent{Type: "message_start", Message: &msg}); err != nil {
		return err
	}
	return e.emit("ping", map[string]string{"type": "ping"})
}

func (e *StreamEncoder) closeBlock() error {
	if e.open == "" {
		return nil
	}
	e.open = ""
	return e.emit("content_block_stop", map[string]any{"type": "content_block_stop", "index": e.index})
}

func (e *StreamEncoder) openBlock(b Block) error {
	if err := e.closeBlock(); err != nil {
		return err
	}
	e.open, e.index = b.Type, e.nextIndex
	e.nextIndex++
	return e.emit("content_block_start", streamEvent{Type: "content_block_start", Index: llm.Ptr(e.index), ContentBlock: &b})
}

func (e *StreamEncoder) delta(d eventDelta) error {
	return e.emit("content_block_delta", streamEvent{Type: "content_block_delta", Index: llm.Ptr(e.index), Delta: &d})
}

// Chunk encodes one chunk; only choice 0 is used (Anthropic has no n).
func (e *StreamEncoder) Chunk(c *llm.ChatChunk) error {
	if err := e.start(c); err != nil {
		return err
	}
	if c.Usage != nil {
		e.usage = c.Usage
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		d := ch.Delta
		if d.ReasoningContent != nil && *d.ReasoningContent != "" {
			if e.open != "thinking" {
				if err := e.openBlock(Block{Type: "thinking"}); err != nil {
					return err
				}
			}
			if err := e.delta(eventDelta{Type: "thinking_delta", Thinking: *d.ReasoningContent}); err != nil {
				return err
			}
		}
		if d.Content != nil && *d.Content != "" {
			if e.open != "text" {
				if err := e.openBlock(Block{Type: "text"}); err != nil {
					return err
				}
			}
			if err := e.delta(eventDelta{Type: "text_delta", Text: *d.Content}); err != nil {
				return err
			}
		}
		for _, tc := range d.ToolCalls {
			ti := 0
			if tc.Index != nil {
				ti = *tc.Index
			}
			if _, seen := e.tools[ti]; !seen {
				e.tools[ti] = e.nextIndex
				if err := e.openBlock(Block{Type: "tool_use", ID: ToolUseID(tc.ID), Name: tc.Function.Name, Input: []byte("{}")}); err != nil {
					return err
				}
			}
			if tc.Function.Arguments != "" {
				if err := e.delta(eventDelta{Type: "input_json_delta", PartialJSON: tc.Function.Arguments}); err != nil {
					return err
				}
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			e.stop = StopReason(*ch.FinishReason)
		}
	}
	return nil
}

// Finish ends a stream that completed: closes the open block, then sends
// the stop reason with the usage, and message_stop.
func (e *StreamEncoder) Finish() error {
	if err := e.start(&llm.ChatChunk{}); err != nil {
		return err
	}
	if err := e.closeBlock(); err != nil {
		return err
	}
	stop := e.stop
	if stop == "" {
		stop = "end_turn"
	}
	u := AnthropicUsage(e.usage)
	if err := e.emit("message_delta", struct {
		Type  string       `json:"type"`
		Delta messageDelta `json:"delta"`
		Usage Usage        `json:"usage"`
	}{"message_delta", messageDelta{StopReason: stop}, u}); err != nil {
		return err
	}
	return e.emit("message_stop", map[string]string{"type": "message_stop"})
}

// Fail ends a broken stream with Anthropic's error event (and no message_stop).
func (e *StreamEncoder) Fail(err error) error {
	pe := provider.AsError(err)
	return e.emit("error", ErrorResponse{Type: "error", Error: ErrorDetail{Type: pe.Kind.AnthropicType(), Message: pe.Error()}})
}
