package responses

import (
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
)

// Emit writes one typed stream event (its name is also its data's type).
type Emit func(event string, data any) error

// Stream event names.
const (
	EventCreated        = "response.created"
	EventInProgress     = "response.in_progress"
	EventItemAdded      = "response.output_item.added"
	EventItemDone       = "response.output_item.done"
	EventPartAdded      = "response.content_part.added"
	EventPartDone       = "response.content_part.done"
	EventTextDelta      = "response.output_text.delta"
	EventTextDone       = "response.output_text.done"
	EventRefusalDelta   = "response.refusal.delta"
	EventRefusalDone    = "response.refusal.done"
	EventReasoningDelta = "response.reasoning_text.delta"
	EventReasoningDone  = "response.reasoning_text.done"
	EventArgumentsDelta = "response.function_call_arguments.delta"
	EventArgumentsDone  = "response.function_call_arguments.done"
	EventCompleted      = "response.completed"
	EventIncomplete     = "response.incomplete"
	EventFailed         = "response.failed"
)

// The events' shapes, with the members OpenAI's spec requires.
type (
	responseEvent struct {
		Type           string    `json:"type"`
		SequenceNumber int       `json:"sequence_number"`
		Response       *Response `json:"response"`
	}
	itemEvent struct {
		Type           string      `json:"type"`
		SequenceNumber int         `json:"sequence_number"`
		OutputIndex    int         `json:"output_index"`
		Item           *OutputItem `json:"item"`
	}
	partEvent struct {
		Type           string     `json:"type"`
		SequenceNumber int        `json:"sequence_number"`
		ItemID         string     `json:"item_id"`
		OutputIndex    int        `json:"output_index"`
		ContentIndex   int        `json:"content_index"`
		Part           OutputPart `json:"part"`
	}
	// deltaEvent is a text, refusal or reasoning delta or done event: each
	// sets the members of its kind (text events always carry logprobs).
	deltaEvent struct {
		Type           string  `json:"type"`
		SequenceNumber int     `json:"sequence_number"`
		ItemID         string  `json:"item_id"`
		OutputIndex    int     `json:"output_index"`
		ContentIndex   int     `json:"content_index"`
		Delta          *string `json:"delta,omitempty"`
		Text           *string `json:"text,omitempty"`
		Refusal        *string `json:"refusal,omitempty"`
		Logprobs       *[]any  `json:"logprobs,omitempty"`
	}
	argumentsEvent struct {
		Type           string  `json:"type"`
		SequenceNumber int     `json:"sequence_number"`
		ItemID         string  `json:"item_id"`
		OutputIndex    int     `json:"output_index"`
		Delta          *string `json:"delta,omitempty"`
		Name           string  `json:"name,omitempty"`
		Arguments      *string `json:"arguments,omitempty"`
	}
)

// StreamEncoder turns chat chunks into the Responses event sequence:
// response.created and response.in_progress; per output item, its
// output_item.added, content parts and deltas, and output_item.done; then
// response.completed (or incomplete, or failed). Items follow one another:
// a new kind of output closes the open item. Only choice 0 is used.
type StreamEncoder struct {
	emit  Emit
	newID NewID
	resp  *Response
	seq   int

	open    int    // output index of the open item, -1 when none
	part    string // type of the open item's open part ("" when none)
	text    strings.Builder
	calls   map[int]int // chunk tool-call index → output index
	finish  string
	started bool
	settled bool
}

// NewStreamEncoder starts from base (see Base), which it completes.
func NewStreamEncoder(base *Response, newID NewID, emit Emit) *StreamEncoder {
	return &StreamEncoder{emit: emit, newID: newID, resp: base, open: -1, calls: map[int]int{}}
}

// Response is the response so far; whole once Finish or Fail returned.
func (e *StreamEncoder) Response() *Response { return e.resp }

func (e *StreamEncoder) next() int {
	n := e.seq
	e.seq++
	return n
}

// snapshot copies the response for an event: later changes must not reach
// an event already encoded (they are encoded at once, but stay safe).
func (e *StreamEncoder) snapshot() *Response {
	r := *e.resp
	r.Output = append([]OutputItem{}, e.resp.Output...)
	return &r
}

func (e *StreamEncoder) responseEvent(name string) error {
	return e.emit(name, responseEvent{Type: name, SequenceNumber: e.next(), Response: e.snapshot()})
}

// Start sends response.created and response.in_progress, once.
func (e *StreamEncoder) Start() error {
	if e.started {
		return nil
	}
	e.started = true
	if err := e.responseEvent(EventCreated); err != nil {
		return err
	}
	return e.responseEvent(EventInProgress)
}

func (e *StreamEncoder) item() *OutputItem { return &e.resp.Output[e.open] }

// openItem closes the open item and adds it.
func (e *StreamEncoder) openItem(it OutputItem) error {
	if err := e.closeItem(); err != nil {
		return err
	}
	it.Status = StatusInProgress
	if it.Type == "reasoning" {
		it.Status = ""
	}
	e.resp.Output = append(e.resp.Output, it)
	e.open = len(e.resp.Output) - 1
	added := it
	return e.emit(EventItemAdded, itemEvent{Type: EventItemAdded, SequenceNumber: e.next(), OutputIndex: e.open, Item: &added})
}

// openPart starts a content part of the open message.
func (e *StreamEncoder) openPart(typ string) error {
	if err := e.closePart(); err != nil {
		return err
	}
	e.part = typ
	it := e.item()
	it.Content = append(it.Content, OutputPart{Type: typ})
	if typ == "reasoning_text" {
		return nil // reasoning has no part events
	}
	return e.emit(EventPartAdded, partEvent{Type: EventPartAdded, SequenceNumber: e.next(), ItemID: it.ID,
		OutputIndex: e.open, ContentIndex: len(it.Content) - 1, Part: OutputPart{Type: typ}})
}

// closePart finishes the open part: its done event with the whole text.
func (e *StreamEncoder) closePart() error {
	if e.part == "" {
		return nil
	}
	it := e.item()
	p := &it.Content[len(it.Content)-1]
	text := e.text.String()
	e.text.Reset()
	if e.part == "refusal" {
		p.Refusal = text
	} else {
		p.Text = text
	}
	err := e.partText(true, text)
	typ := e.part
	e.part = ""
	if err != nil || typ == "reasoning_text" { // reasoning has no part events
		return err
	}
	return e.emit(EventPartDone, partEvent{Type: EventPartDone, SequenceNumber: e.next(), ItemID: it.ID, OutputIndex: e.open,
		ContentIndex: len(it.Content) - 1, Part: *p})
}

// partEvents names each part type's delta and done events.
var partEvents = map[string][2]string{
	"output_text":    {EventTextDelta, EventTextDone},
	"refusal":        {EventRefusalDelta, EventRefusalDone},
	"reasoning_text": {EventReasoningDelta, EventReasoningDone},
}

// partText sends the open part's delta event, or its done event with the
// whole text.
func (e *StreamEncoder) partText(done bool, s string) error {
	it := e.item()
	ev := deltaEvent{Type: partEvents[e.part][0], SequenceNumber: e.next(), ItemID: it.ID, OutputIndex: e.open,
		ContentIndex: len(it.Content) - 1, Delta: &s}
	if done {
		ev.Type, ev.Delta, ev.Text = partEvents[e.part][1], nil, &s
		if e.part == "refusal" {
			ev.Text, ev.Refusal = nil, &s
		}
	}
	if e.part == "output_text" {
		ev.Logprobs = &[]any{}
	}
	return e.emit(ev.Type, ev)
}

// closeItem finishes the open item: its part, its arguments, its done event.
func (e *StreamEncoder) closeItem() error {
	if e.open < 0 {
		return nil
	}
	if err := e.closePart(); err != nil {
		return err
	}
	it := e.item()
	if it.Type == "function_call" {
		if err := e.emit(EventArgumentsDone, argumentsEvent{Type: EventArgumentsDone, SequenceNumber: e.next(), ItemID: it.ID,
			OutputIndex: e.open, Name: it.Name, Arguments: it.Arguments}); err != nil {
			return err
		}
	}
	if it.Type != "reasoning" {
		it.Status = StatusCompleted
	}
	done := *it
	idx := e.open
	e.open = -1
	return e.emit(EventItemDone, itemEvent{Type: EventItemDone, SequenceNumber: e.next(), OutputIndex: idx, Item: &done})
}

// textDelta appends to the open item's part of typ, opening item and part
// as needed.
func (e *StreamEncoder) textDelta(itemType, partType, delta string) error {
	if e.open < 0 || e.item().Type != itemType {
		prefix := "msg"
		it := OutputItem{Type: itemType, Role: "assistant"}
		if itemType == "reasoning" {
			prefix, it.Role = "rs", ""
		}
		it.ID = e.newID(prefix)
		if err := e.openItem(it); err != nil {
			return err
		}
	}
	if e.part != partType {
		if err := e.openPart(partType); err != nil {
			return err
		}
	}
	e.text.WriteString(delta)
	return e.partText(false, delta)
}

// Chunk encodes one chat chunk.
func (e *StreamEncoder) Chunk(c *llm.ChatChunk) error {
	if err := e.Start(); err != nil {
		return err
	}
	if c.Model != "" {
		e.resp.Model = c.Model
	}
	if c.Usage != nil {
		e.resp.Usage = FromUsage(c.Usage)
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		d := ch.Delta
		if d.ReasoningContent != nil && *d.ReasoningContent != "" {
			if err := e.textDelta("reasoning", "reasoning_text", *d.ReasoningContent); err != nil {
				return err
			}
		}
		if d.Content != nil && *d.Content != "" {
			if err := e.textDelta("message", "output_text", *d.Content); err != nil {
				return err
			}
		}
		if d.Refusal != nil && *d.Refusal != "" {
			if err := e.textDelta("message", "refusal", *d.Refusal); err != nil {
				return err
			}
		}
		for _, tc := range d.ToolCalls {
			if err := e.toolCall(tc); err != nil {
				return err
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			e.finish = *ch.FinishReason
		}
	}
	return nil
}

// toolCall opens a function_call item for a new call and streams its
// arguments.
func (e *StreamEncoder) toolCall(tc llm.ToolCall) error {
	ti := 0
	if tc.Index != nil {
		ti = *tc.Index
	}
	oi, seen := e.calls[ti]
	if !seen {
		if err := e.openItem(OutputItem{Type: "function_call", ID: e.newID("fc"), CallID: tc.ID, Name: tc.Function.Name,
			Arguments: llm.Ptr("")}); err != nil {
			return err
		}
		oi = e.open
		e.calls[ti] = oi
	}
	if tc.Function.Arguments == "" {
		return nil
	}
	it := &e.resp.Output[oi]
	it.Arguments = llm.Ptr(*it.Arguments + tc.Function.Arguments) // a new string: events already made keep theirs
	return e.emit(EventArgumentsDelta, argumentsEvent{Type: EventArgumentsDelta, SequenceNumber: e.next(), ItemID: it.ID,
		OutputIndex: oi, Delta: &tc.Function.Arguments})
}

// Settle ends the output of a stream that completed: the open item is
// closed and the response takes its final status. The response is then
// whole (to be stored before the client learns it is done).
func (e *StreamEncoder) Settle(done time.Time) error {
	if e.settled {
		return nil
	}
	e.settled = true
	if err := e.Start(); err != nil {
		return err
	}
	if err := e.closeItem(); err != nil {
		return err
	}
	finish := e.finish
	if finish == "" {
		finish = llm.FinishStop
	}
	Finish(e.resp, finish, done)
	return nil
}

// Finish ends a stream that completed (settling it if need be) with
// response.completed, or response.incomplete, carrying the whole response.
func (e *StreamEncoder) Finish(done time.Time) error {
	if err := e.Settle(done); err != nil {
		return err
	}
	if e.resp.Status == StatusIncomplete {
		return e.responseEvent(EventIncomplete)
	}
	return e.responseEvent(EventCompleted)
}

// Fail ends a stream that broke after it started: response.failed, with
// the output so far and the error (code as OpenAI's ResponseErrorCode).
func (e *StreamEncoder) Fail(code, message string) error {
	if err := e.Start(); err != nil {
		return err
	}
	e.resp.Status = StatusFailed
	e.resp.Error = &ResponseError{Code: code, Message: message}
	for i := range e.resp.Output {
		if e.resp.Output[i].Type != "reasoning" {
			e.resp.Output[i].Status = StatusIncomplete
		}
	}
	e.open, e.part = -1, ""
	return e.responseEvent(EventFailed)
}
