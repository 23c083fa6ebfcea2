// Package responses translates OpenAI's Responses API (POST /v1/responses)
// to and from the gateway's chat shape, so that any provider serves it:
// requests and their conversation history become chat requests, chat answers
// and chunks become Response objects and the typed stream events. No I/O.
package responses

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
)

// Request is a POST /v1/responses body. Fields tidegate neither reads nor
// echoes are dropped; the ones it cannot serve are refused by Validate.
type Request struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input"`
	Instructions       *string           `json:"instructions,omitempty"`
	Tools              []Tool            `json:"tools,omitempty"`
	ToolChoice         json.RawMessage   `json:"tool_choice,omitempty"`
	Text               *TextParam        `json:"text,omitempty"`
	Reasoning          *Reasoning        `json:"reasoning,omitempty"`
	MaxOutputTokens    *int              `json:"max_output_tokens,omitempty"`
	Temperature        *float64          `json:"temperature,omitempty"`
	TopP               *float64          `json:"top_p,omitempty"`
	Metadata           map[string]string `json:"metadata,omitempty"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls,omitempty"`
	PreviousResponseID string            `json:"previous_response_id,omitempty"`
	Store              *bool             `json:"store,omitempty"`
	Stream             bool              `json:"stream,omitempty"`
	User               string            `json:"user,omitempty"`
	// Refused when set: tidegate has no background jobs or conversations.
	Background   *bool           `json:"background,omitempty"`
	Conversation json.RawMessage `json:"conversation,omitempty"`
}

type requestAlias Request

var requestFields = llm.FieldsOf(requestAlias{})

// UnmarshalJSON refuses duplicates and other spellings of the fields
// tidegate reads (llm.SplitMembers); unknown fields are dropped.
func (r *Request) UnmarshalJSON(data []byte) error {
	var a requestAlias
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	if _, err := llm.SplitMembers(data, requestFields); err != nil {
		return err
	}
	*r = Request(a)
	return nil
}

// Stored reports whether the response is to be kept (OpenAI's default: yes).
func (r *Request) Stored() bool { return r.Store == nil || *r.Store }

// Tool is a Responses tool; only type function can be served by any provider.
type Tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// EchoTool is a function tool as a response echoes it: the members the
// spec requires are present, null when the request left them out.
type EchoTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description *string         `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
}

// TextParam is the request's (and the response's) text configuration.
type TextParam struct {
	Format    *Format `json:"format,omitempty"`
	Verbosity string  `json:"verbosity,omitempty"`
}

// Format is text.format: text, json_object, or json_schema with its schema.
type Format struct {
	Type        string          `json:"type"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// Reasoning is the request's reasoning configuration.
type Reasoning struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

// Item is one input or output item: a message, a function call, a
// function call's output, or reasoning. Content and Output keep their JSON
// (a string or a list of parts).
type Item struct {
	Type      string          `json:"type,omitempty"`
	ID        string          `json:"id,omitempty"`
	Role      string          `json:"role,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	Status    string          `json:"status,omitempty"`
	CallID    string          `json:"call_id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Arguments *string         `json:"arguments,omitempty"`
	Output    json.RawMessage `json:"output,omitempty"`
	Summary   json.RawMessage `json:"summary,omitempty"`
}

// Part is one content part of a message item.
type Part struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	Refusal  string `json:"refusal,omitempty"`
	ImageURL string `json:"image_url,omitempty"`
	FileID   string `json:"file_id,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// Response is OpenAI's Response object. Members the spec requires are
// always present, null when they have no value; others only when set.
type Response struct {
	ID                 string         `json:"id"`
	Object             string         `json:"object"`
	CreatedAt          int64          `json:"created_at"`
	Status             string         `json:"status"`
	CompletedAt        *int64         `json:"completed_at"`
	Error              *ResponseError `json:"error"`
	IncompleteDetails  *Incomplete    `json:"incomplete_details"`
	Instructions       *string        `json:"instructions"`
	MaxOutputTokens    *int           `json:"max_output_tokens"`
	Model              string         `json:"model"`
	Output             []OutputItem   `json:"output"`
	ParallelToolCalls  bool           `json:"parallel_tool_calls"`
	PreviousResponseID *string        `json:"previous_response_id"`
	Reasoning          Reasoning      `json:"reasoning"`
	// Store says whether the response is kept. OpenAI's Response schema has
	// no such member, so it is not sent.
	Store       bool              `json:"-"`
	Temperature *float64          `json:"temperature"`
	Text        TextParam         `json:"text"`
	ToolChoice  json.RawMessage   `json:"tool_choice"`
	Tools       []EchoTool        `json:"tools"`
	TopP        *float64          `json:"top_p"`
	Truncation  string            `json:"truncation"`
	Usage       *Usage            `json:"usage,omitempty"`
	User        *string           `json:"user,omitempty"`
	Metadata    map[string]string `json:"metadata"`
}

// ResponseError is a failed response's error.
type ResponseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Incomplete says why a response stopped early.
type Incomplete struct {
	Reason string `json:"reason"`
}

// OutputItem is one item of a response's output: a message, a function
// call or reasoning. Only the fields of its type are set.
type OutputItem struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Status string `json:"status,omitempty"`
	// message
	Role    string       `json:"role,omitempty"`
	Content []OutputPart `json:"content,omitempty"`
	// function_call
	CallID    string  `json:"call_id,omitempty"`
	Name      string  `json:"name,omitempty"`
	Arguments *string `json:"arguments,omitempty"`
	// reasoning
	Summary []OutputPart `json:"summary,omitempty"`
}

// MarshalJSON writes the members the spec requires of the item's type even
// when empty (a message's content, reasoning's summary).
func (it OutputItem) MarshalJSON() ([]byte, error) {
	type alias OutputItem
	switch it.Type {
	case "message":
		return json.Marshal(struct {
			alias
			Content []OutputPart `json:"content"`
		}{alias(it), nonNil(it.Content)})
	case "reasoning":
		return json.Marshal(struct {
			alias
			Content []OutputPart `json:"content"`
			Summary []OutputPart `json:"summary"`
		}{alias(it), nonNil(it.Content), nonNil(it.Summary)})
	}
	return json.Marshal(alias(it))
}

func nonNil(p []OutputPart) []OutputPart {
	if p == nil {
		return []OutputPart{}
	}
	return p
}

// OutputPart is a part of an output message (output_text, refusal) or of
// reasoning (reasoning_text).
type OutputPart struct {
	Type    string
	Text    string
	Refusal string
}

func (p OutputPart) MarshalJSON() ([]byte, error) {
	switch p.Type {
	case "output_text":
		return json.Marshal(struct {
			Type        string `json:"type"`
			Text        string `json:"text"`
			Annotations []any  `json:"annotations"`
			Logprobs    []any  `json:"logprobs"`
		}{p.Type, p.Text, []any{}, []any{}})
	case "refusal":
		return json.Marshal(struct {
			Type    string `json:"type"`
			Refusal string `json:"refusal"`
		}{p.Type, p.Refusal})
	}
	return json.Marshal(struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}{p.Type, p.Text})
}

func (p *OutputPart) UnmarshalJSON(data []byte) error {
	var w struct {
		Type    string `json:"type"`
		Text    string `json:"text"`
		Refusal string `json:"refusal"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*p = OutputPart{Type: w.Type, Text: w.Text, Refusal: w.Refusal}
	return nil
}

// Usage is a response's token usage.
type Usage struct {
	InputTokens         int                 `json:"input_tokens"`
	InputTokensDetails  InputTokensDetails  `json:"input_tokens_details"`
	OutputTokens        int                 `json:"output_tokens"`
	OutputTokensDetails OutputTokensDetails `json:"output_tokens_details"`
	TotalTokens         int                 `json:"total_tokens"`
}

type InputTokensDetails struct {
	CachedTokens     int `json:"cached_tokens"`
	CacheWriteTokens int `json:"cache_write_tokens"`
}

type OutputTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

// Deleted is the answer to DELETE /v1/responses/{id}.
type Deleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// Stored is a kept response: the conversation that led to it (its history
// and its own input, as items) and the response itself, owned by a project.
type Stored struct {
	ID        string
	ProjectID string // "" for the master key
	KeyID     string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Input is the JSON array of the items the response answered, history
	// included, so that a continuation needs this one record.
	Input json.RawMessage
	// Response is the Response object as answered (JSON).
	Response json.RawMessage
}

// Retention is how long a stored response is kept: OpenAI's own 30 days.
const Retention = 30 * 24 * time.Hour

// ErrNotFound is a response that does not exist, expired, or was deleted.
var ErrNotFound = errors.New("response not found")
