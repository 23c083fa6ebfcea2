// Package llm holds the wire types tidegate exposes: OpenAI's chat, embedding,
// image and model shapes, which every dialect translates to and from. No I/O.
package llm

import (
	"bytes"
	"encoding/json"
)

// ChatRequest is an OpenAI chat completion request. Fields tidegate does not
// interpret are kept in Extra and sent on untouched to OpenAI-dialect upstreams.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Stop                Stop            `json:"stop,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	PresencePenalty     *float64        `json:"presence_penalty,omitempty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Logprobs            *bool           `json:"logprobs,omitempty"`
	TopLogprobs         *int            `json:"top_logprobs,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	User                string          `json:"user,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

type chatRequestAlias ChatRequest

func (r *ChatRequest) UnmarshalJSON(data []byte) error {
	var a chatRequestAlias
	extra, err := decodeWithExtra(data, &a, chatRequestFields)
	if err != nil {
		return err
	}
	*r = ChatRequest(a)
	r.Extra = extra
	return nil
}

func (r ChatRequest) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(chatRequestAlias(r), r.Extra)
}

// MaxOutputTokens is the client's output cap, whichever field it used; 0 when unset.
func (r *ChatRequest) MaxOutputTokens() int {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// Choices is the number of completions asked for (n), at least 1.
func (r *ChatRequest) Choices() int {
	if r.N == nil || *r.N < 1 {
		return 1
	}
	return *r.N
}

// ToolChoiceMode reads tool_choice: "auto" (also when unset), "none",
// "required", or "function" with the function's name.
func (r *ChatRequest) ToolChoiceMode() (mode, name string) {
	var s string
	if json.Unmarshal(r.ToolChoice, &s) == nil {
		switch s {
		case "none", "required":
			return s, ""
		}
		return "auto", ""
	}
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(r.ToolChoice, &named) == nil && named.Function.Name != "" {
		return "function", named.Function.Name
	}
	return "auto", ""
}

// WantsUsage reports whether a streaming client asked for the final usage chunk.
func (r *ChatRequest) WantsUsage() bool {
	return r.StreamOptions != nil && r.StreamOptions.IncludeUsage
}

type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Stop is OpenAI's stop: a string or an array of strings; always kept as a list.
type Stop []string

func (s *Stop) UnmarshalJSON(data []byte) error {
	if bytes.Equal(data, []byte("null")) {
		*s = nil
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		var one string
		if err := json.Unmarshal(data, &one); err != nil {
			return err
		}
		*s = Stop{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

type Tool struct {
	Type     string       `json:"type"`
	Function ToolFunction `json:"function"`
}

type ToolFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

type ResponseFormat struct {
	Type       string          `json:"type"`
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
}

// Message is one chat message. Content is a string or a list of parts.
type Message struct {
	Role             string     `json:"role"`
	Content          Content    `json:"content"`
	Name             string     `json:"name,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID       string     `json:"tool_call_id,omitempty"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	Refusal          string     `json:"refusal,omitempty"`
	// Prefix marks a trailing assistant message the model is to continue
	// (DeepSeek's prefix completion; a prefill for Anthropic).
	Prefix bool `json:"prefix,omitempty"`
}

// Content is a message's content: null, a string, or a list of parts.
type Content struct {
	Text  string
	Parts []ContentPart
	// Set distinguishes "" from null when Parts is nil.
	Set bool
}

// TextContent is string content.
func TextContent(s string) Content { return Content{Text: s, Set: true} }

// String is the content's text, parts joined.
func (c Content) String() string {
	if c.Parts == nil {
		return c.Text
	}
	var b bytes.Buffer
	for _, p := range c.Parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func (c Content) MarshalJSON() ([]byte, error) {
	if c.Parts != nil {
		return json.Marshal(c.Parts)
	}
	if !c.Set && c.Text == "" {
		return []byte("null"), nil
	}
	return json.Marshal(c.Text)
}

func (c *Content) UnmarshalJSON(data []byte) error {
	*c = Content{}
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		c.Set = true
		return json.Unmarshal(data, &c.Text)
	default:
		c.Set = true
		if err := json.Unmarshal(data, &c.Parts); err != nil {
			return err
		}
		if c.Parts == nil {
			c.Parts = []ContentPart{}
		}
		return nil
	}
}

// ContentPart is one part of a message. Parts of types tidegate does not
// translate keep their original JSON in Raw and are re-sent as they came.
type ContentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`

	Raw json.RawMessage `json:"-"`
}

type contentPartAlias ContentPart

func (p *ContentPart) UnmarshalJSON(data []byte) error {
	var a contentPartAlias
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*p = ContentPart(a)
	if p.Type != "text" && p.Type != "image_url" {
		p.Raw = append(json.RawMessage(nil), data...)
	}
	return nil
}

func (p ContentPart) MarshalJSON() ([]byte, error) {
	if p.Raw != nil {
		return p.Raw, nil
	}
	if p.Type == "text" {
		// A text part always carries its text, even when empty.
		return json.Marshal(struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{p.Type, p.Text})
	}
	return json.Marshal(contentPartAlias(p))
}

type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// ToolCall is an assistant's call of a tool. Index is set in stream deltas only.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// ChatResponse is a non-streaming chat completion.
type ChatResponse struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`

	// Raw is the upstream's own encoding of this answer when it is valid
	// OpenAI wire format and tidegate changed nothing: it is relayed as is.
	Raw json.RawMessage `json:"-"`
}

type Choice struct {
	Index        int             `json:"index"`
	Message      Message         `json:"message"`
	FinishReason string          `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
}

// MarshalJSON writes what OpenAI's spec requires of every choice, even
// when there is nothing to say: logprobs and the message's refusal, as null.
func (c Choice) MarshalJSON() ([]byte, error) {
	type message struct {
		Message
		Refusal *string `json:"refusal"` // shadows Message.Refusal
	}
	m := message{Message: c.Message}
	if c.Message.Refusal != "" {
		m.Refusal = &c.Message.Refusal
	}
	logprobs := c.Logprobs
	if len(logprobs) == 0 {
		logprobs = json.RawMessage("null")
	}
	return json.Marshal(struct {
		Index        int             `json:"index"`
		Message      message         `json:"message"`
		FinishReason string          `json:"finish_reason"`
		Logprobs     json.RawMessage `json:"logprobs"`
	}{c.Index, m, c.FinishReason, logprobs})
}

// ChatChunk is one streamed chunk (chat.completion.chunk).
type ChatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`
	// Resumed counts the times tidegate continued this answer on another
	// target after its stream broke; set on the finishing chunk.
	Resumed int `json:"x_tidegate_resumed,omitempty"`

	// Raw is the upstream's own encoding of this chunk, relayed as is when
	// tidegate changed nothing (see ChatResponse.Raw).
	Raw json.RawMessage `json:"-"`
}

// Encoded returns the chunk's wire form: the upstream's bytes when kept.
func (c *ChatChunk) Encoded() ([]byte, error) {
	if c.Raw != nil {
		return c.Raw, nil
	}
	return json.Marshal(c)
}

// Encoded returns the answer's wire form: the upstream's bytes when kept.
func (r *ChatResponse) Encoded() ([]byte, error) {
	if r.Raw != nil {
		return r.Raw, nil
	}
	return json.Marshal(r)
}

type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
}

type Delta struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	Refusal          *string    `json:"refusal,omitempty"`
}

// HasContent reports whether the chunk carries any generated output.
func (c *ChatChunk) HasContent() bool {
	for _, ch := range c.Choices {
		d := ch.Delta
		if (d.Content != nil && *d.Content != "") || (d.ReasoningContent != nil && *d.ReasoningContent != "") ||
			len(d.ToolCalls) > 0 || (d.Refusal != nil && *d.Refusal != "") {
			return true
		}
	}
	return false
}

// Ptr returns a pointer to v; handy for optional wire fields.
func Ptr[T any](v T) *T { return &v }

// Finish reasons, OpenAI's names.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"
	FinishContentFilter = "content_filter"
)

// CompactJSON returns raw JSON without insignificant whitespace, "{}" when
// empty; invalid JSON is returned as it came.
func CompactJSON(raw []byte) string {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "{}"
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}
