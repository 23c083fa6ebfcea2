package anthropic

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/sse"
)

// DefaultBaseURL is Anthropic's API.
const DefaultBaseURL = "https://api.anthropic.com"

// Version is the anthropic-version header tidegate speaks.
const Version = "2023-06-01"

// DefaultMaxTokens fills Anthropic's required max_tokens when the client set none.
const DefaultMaxTokens = 4096

// Client calls Anthropic's Messages API.
// Every exported method (and its stream's Err) passes its error through
// provider.Scrub with the client's key before it leaves.
type Client struct {
	Name    string
	BaseURL string
	APIKey  string
	HTTP    *http.Client
}

func (c *Client) send(ctx context.Context, req *llm.ChatRequest, stream bool) (*http.Response, error) {
	mr, err := FromChatRequest(req)
	if err != nil {
		return nil, err
	}
	mr.Stream = stream
	body, err := json.Marshal(mr)
	if err != nil {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Message: "cannot encode request", Err: err}
	}
	h := make(http.Header, 4)
	h.Set("x-api-key", c.APIKey)
	h.Set("anthropic-version", Version)
	return provider.Call(ctx, c.HTTP, c.Name, c.endpoint("/v1/messages"), h, body, c.fail)
}

// fail maps an Anthropic error body ({"type":"error","error":{…}}).
func (c *Client) fail(status int, h http.Header, body []byte) *provider.Error {
	var er ErrorResponse
	_ = json.Unmarshal(body, &er)
	e := &provider.Error{Kind: provider.KindForStatus(status), Provider: c.Name, Status: status,
		Code: er.Error.Type, Message: er.Error.Message}
	if e.Message == "" {
		e.Quote(body) // shown once scrubbed
	}
	if status == http.StatusOK { // an error event inside a stream
		e.Kind = provider.KindUpstream
	}
	if status != http.StatusUnauthorized {
		if k, ok := provider.ClassifyCode(er.Error.Type); ok {
			e.Kind = k
		} else if k, ok := e.MessageKind(); ok {
			e.Kind = k
		}
	}
	if h != nil {
		e.RetryAfter = provider.RetryAfter(h, time.Now())
	}
	return e
}

func (c *Client) ChatCompletion(ctx context.Context, req *llm.ChatRequest) (_ *llm.ChatResponse, err error) {
	defer provider.Guard(&err, c.APIKey)
	resp, err := c.send(ctx, req, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := provider.ReadBody(resp)
	if err != nil {
		return nil, err
	}
	var mr MessagesResponse
	if err := json.Unmarshal(b, &mr); err != nil || mr.Type != "message" {
		if mr.Type == "error" {
			return nil, c.fail(resp.StatusCode, resp.Header, b)
		}
		return nil, provider.BadResponse("upstream %s sent an unreadable answer", c.Name).Quote(b)
	}
	out := ToChatResponse(&mr)
	if u := rawUsage(b); u != nil {
		out.Usage.Raw = u
	}
	return out, nil
}

func rawUsage(body []byte) json.RawMessage {
	var v struct {
		Usage json.RawMessage `json:"usage"`
	}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	return v.Usage
}

// ChatUsage converts Anthropic usage to OpenAI's normal form: prompt tokens
// include cache reads and writes (providers.md §1.1).
func ChatUsage(u Usage) *llm.Usage {
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	out := &llm.Usage{PromptTokens: prompt, CompletionTokens: u.OutputTokens, TotalTokens: prompt + u.OutputTokens}
	if u.CacheReadInputTokens > 0 || u.CacheCreationInputTokens > 0 {
		out.PromptTokensDetails = &llm.PromptTokensDetails{CachedTokens: u.CacheReadInputTokens, CacheWriteTokens: u.CacheCreationInputTokens}
	}
	return out
}

func (c *Client) ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (_ provider.ChatStream, err error) {
	defer provider.Guard(&err, c.APIKey)
	resp, err := c.send(ctx, req, true)
	if err != nil {
		return nil, err
	}
	return &stream{c: c, body: resp.Body, r: sse.NewReader(resp.Body), created: time.Now().Unix()}, nil
}

// stream turns Anthropic's events into OpenAI chunks.
type stream struct {
	c       *Client
	body    io.ReadCloser
	r       *sse.Reader
	created int64

	id, model string
	usage     Usage
	rawUsage  json.RawMessage
	toolIndex map[int]int // content block index → tool call index
	stop      string
	cur       llm.ChatChunk
	err       error
	done      bool
	flushUse  bool
}

func (s *stream) chunk(d llm.Delta, finish *string) {
	s.cur = llm.ChatChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
		Choices: []llm.ChunkChoice{{Delta: d, FinishReason: finish}}}
}

func (s *stream) Next() bool {
	if s.err != nil || s.done {
		return false
	}
	if s.flushUse { // after the finish chunk, the usage chunk
		s.flushUse, s.done = false, true
		u := ChatUsage(s.usage)
		u.Raw = s.rawUsage
		s.cur = llm.ChatChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
			Choices: []llm.ChunkChoice{}, Usage: u}
		return true
	}
	for s.r.Next() {
		ev := s.r.Event()
		var e streamEvent
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			s.err = provider.BadResponse("upstream %s sent a malformed stream event", s.c.Name).Quote(ev.Data)
			return false
		}
		switch e.Type {
		case "message_start":
			if e.Message != nil {
				s.id, s.model, s.usage = e.Message.ID, e.Message.Model, e.Message.Usage
			}
			s.chunk(llm.Delta{Role: "assistant", Content: llm.Ptr("")}, nil)
			return true
		case "content_block_start":
			if e.ContentBlock != nil && e.ContentBlock.Type == "tool_use" {
				if s.toolIndex == nil {
					s.toolIndex = map[int]int{}
				}
				ti := len(s.toolIndex)
				s.toolIndex[deref(e.Index)] = ti
				s.chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(ti), ID: e.ContentBlock.ID, Type: "function",
					Function: llm.FunctionCall{Name: e.ContentBlock.Name}}}}, nil)
				return true
			}
		case "content_block_delta":
			if e.Delta == nil {
				continue
			}
			switch e.Delta.Type {
			case "text_delta":
				s.chunk(llm.Delta{Content: llm.Ptr(e.Delta.Text)}, nil)
				return true
			case "thinking_delta":
				s.chunk(llm.Delta{ReasoningContent: llm.Ptr(e.Delta.Thinking)}, nil)
				return true
			case "input_json_delta":
				s.chunk(llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(s.toolIndex[deref(e.Index)]),
					Function: llm.FunctionCall{Arguments: e.Delta.PartialJSON}}}}, nil)
				return true
			}
		case "message_delta":
			if e.Usage != nil {
				mergeUsage(&s.usage, e.Usage)
				s.rawUsage = rawUsage(ev.Data)
			}
			if e.Delta != nil && e.Delta.StopReason != nil {
				s.stop = *e.Delta.StopReason
			}
		case "message_stop":
			s.chunk(llm.Delta{}, llm.Ptr(FinishReason(s.stop)))
			s.flushUse = true
			return true
		case "error":
			body, _ := json.Marshal(ErrorResponse{Type: "error", Error: *orEmpty(e.Error)})
			s.err = s.c.fail(http.StatusOK, nil, body)
			return false
		}
	}
	if err := s.r.Err(); err != nil {
		e := provider.ClassifyTransport(err)
		e.Provider = s.c.Name
		s.err = e
		return false
	}
	s.err = &provider.Error{Kind: provider.KindUnavailable, Provider: s.c.Name, Message: "upstream stream ended before message_stop"}
	return false
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func orEmpty(e *ErrorDetail) *ErrorDetail {
	if e == nil {
		return &ErrorDetail{Type: "api_error", Message: "error event without details"}
	}
	return e
}

func (s *stream) Chunk() *llm.ChatChunk { return &s.cur }
func (s *stream) Err() error            { return provider.Scrub(s.err, s.c.APIKey) }
func (s *stream) Buffered() bool        { return s.flushUse || s.r.Buffered() }

func (s *stream) Close() error {
	if s.done || s.flushUse {
		sse.Drain(s.body) // the connection goes back to the pool
	}
	return s.body.Close()
}

// FinishReason maps Anthropic's stop_reason to OpenAI's finish_reason.
func FinishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return llm.FinishLength
	case "tool_use":
		return llm.FinishToolCalls
	case "refusal":
		return llm.FinishContentFilter
	default:
		return llm.FinishStop
	}
}

// StopReason maps OpenAI's finish_reason to Anthropic's stop_reason.
func StopReason(finish string) string {
	switch finish {
	case llm.FinishLength:
		return "max_tokens"
	case llm.FinishToolCalls, "function_call":
		return "tool_use"
	case llm.FinishContentFilter, "sensitive":
		return "refusal"
	default:
		return "end_turn"
	}
}

// FromChatRequest translates an OpenAI chat request for Anthropic.
func FromChatRequest(req *llm.ChatRequest) (*MessagesRequest, error) {
	if req.Choices() > 1 {
		return nil, &provider.Error{Kind: provider.KindUnsupported, Code: "unsupported_parameter", Param: "n",
			Message: "Anthropic models return one choice; n must be 1"}
	}
	mr := &MessagesRequest{Model: req.Model, MaxTokens: req.MaxOutputTokens(), TopP: req.TopP, StopSequences: req.Stop}
	if mr.MaxTokens == 0 {
		mr.MaxTokens = DefaultMaxTokens
	}
	if req.Temperature != nil {
		t := min(*req.Temperature, 1) // Anthropic's range is 0..1
		mr.Temperature = &t
		// Newer Claude models reject temperature and top_p together.
		mr.TopP = nil
	}
	if req.User != "" {
		mr.Metadata = &Metadata{UserID: req.User}
	}
	// The budget fits under max_tokens, never the reverse: max_tokens is
	// what the budget reservation covered. Anthropic wants at least
	// minThinking tokens of budget, below max_tokens; with less room there
	// is no thinking.
	if budget := min(thinkingBudget(req.ReasoningEffort), mr.MaxTokens-1); budget >= minThinking {
		mr.Thinking = &Thinking{Type: "enabled", BudgetTokens: budget}
		mr.Temperature, mr.TopP = nil, nil // not allowed with thinking
	}
	for _, t := range req.Tools {
		schema := t.Function.Parameters
		if len(schema) == 0 {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		mr.Tools = append(mr.Tools, Tool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	mr.ToolChoice = toolChoice(req)
	if req.ResponseFormat != nil && req.ResponseFormat.Type != "text" {
		// Anthropic has no JSON mode: ask for it in the system prompt.
		ask := "Respond with a single JSON object and nothing else."
		if len(req.ResponseFormat.JSONSchema) > 0 {
			ask += " It must match this JSON schema: " + string(req.ResponseFormat.JSONSchema)
		}
		mr.System = append(mr.System, Block{Type: "text", Text: ask})
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			mr.System = append(mr.System, Block{Type: "text", Text: m.Content.String()})
		case "user":
			mr.appendTurn("user", userBlocks(m.Content))
		case "assistant":
			var blocks []Block
			if text := m.Content.String(); text != "" {
				blocks = append(blocks, Block{Type: "text", Text: text})
			}
			for _, tc := range m.ToolCalls {
				input := json.RawMessage(tc.Function.Arguments)
				if !json.Valid(input) {
					input = json.RawMessage("{}")
				}
				blocks = append(blocks, Block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
			}
			if len(blocks) == 0 {
				blocks = []Block{{Type: "text", Text: ""}}
			}
			mr.appendTurn("assistant", blocks)
		case "tool", "function":
			content, _ := json.Marshal(m.Content.String())
			mr.appendTurn("user", []Block{{Type: "tool_result", ToolUseID: m.ToolCallID, Content: content}})
		default:
			return nil, &provider.Error{Kind: provider.KindInvalidRequest, Param: "messages",
				Message: fmt.Sprintf("unknown message role %q", m.Role)}
		}
	}
	mr.trimPrefill()
	if len(mr.Messages) == 0 {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Param: "messages", Message: "Anthropic needs at least one user or assistant message"}
	}
	return mr, nil
}

// appendTurn merges consecutive turns of one role, as Anthropic wants them alternating.
func (mr *MessagesRequest) appendTurn(role string, blocks []Block) {
	if n := len(mr.Messages); n > 0 && mr.Messages[n-1].Role == role {
		mr.Messages[n-1].Content = append(mr.Messages[n-1].Content, blocks...)
		return
	}
	mr.Messages = append(mr.Messages, Message{Role: role, Content: blocks})
}

// trimPrefill strips trailing whitespace from a final assistant turn (a
// prefill, as resume sends): Anthropic rejects one that ends in whitespace.
// Text blocks left empty are dropped, and the turn with them if nothing is left.
func (mr *MessagesRequest) trimPrefill() {
	n := len(mr.Messages)
	if n == 0 || mr.Messages[n-1].Role != "assistant" {
		return
	}
	blocks := mr.Messages[n-1].Content
	for len(blocks) > 0 && blocks[len(blocks)-1].Type == "text" {
		last := &blocks[len(blocks)-1]
		if last.Text = strings.TrimRightFunc(last.Text, unicode.IsSpace); last.Text != "" {
			break
		}
		blocks = blocks[:len(blocks)-1]
	}
	if len(blocks) == 0 {
		mr.Messages = mr.Messages[:n-1]
		return
	}
	mr.Messages[n-1].Content = blocks
}

func userBlocks(c llm.Content) []Block {
	if c.Parts == nil {
		return []Block{{Type: "text", Text: c.Text}}
	}
	var out []Block
	for _, p := range c.Parts {
		switch {
		case p.Type == "text":
			out = append(out, Block{Type: "text", Text: p.Text})
		case p.Type == "image_url" && p.ImageURL != nil:
			out = append(out, Block{Type: "image", Source: imageSource(p.ImageURL.URL)})
		}
	}
	return out
}

// imageSource turns a data: URI into a base64 source, anything else into a url source.
func imageSource(u string) *Source {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, found := strings.Cut(rest, ",")
		if found && strings.HasSuffix(meta, ";base64") {
			return &Source{Type: "base64", MediaType: strings.TrimSuffix(meta, ";base64"), Data: data}
		}
	}
	return &Source{Type: "url", URL: u}
}

func toolChoice(req *llm.ChatRequest) *ToolChoice {
	if len(req.Tools) == 0 {
		return nil
	}
	tc := &ToolChoice{Type: "auto"}
	switch mode, name := req.ToolChoiceMode(); mode {
	case "none":
		tc.Type = "none"
	case "required":
		tc.Type = "any"
	case "function":
		tc.Type, tc.Name = "tool", name
	}
	if req.ParallelToolCalls != nil && !*req.ParallelToolCalls && tc.Type != "none" {
		tc.DisableParallelToolUse = true
	}
	return tc
}

// minThinking is the smallest thinking budget Anthropic accepts.
const minThinking = 1024

func thinkingBudget(effort string) int {
	switch effort {
	case "minimal", "low":
		return 1024
	case "medium":
		return 4096
	case "high", "xhigh", "max":
		return 16384
	}
	return 0
}

// ToChatResponse translates Anthropic's answer to OpenAI's.
func ToChatResponse(mr *MessagesResponse) *llm.ChatResponse {
	msg := assistantMessage(mr.Content)
	stop := ""
	if mr.StopReason != nil {
		stop = *mr.StopReason
	}
	return &llm.ChatResponse{ID: mr.ID, Object: "chat.completion", Created: time.Now().Unix(), Model: mr.Model,
		Choices: []llm.Choice{{Index: 0, Message: msg, FinishReason: FinishReason(stop)}},
		Usage:   ChatUsage(mr.Usage)}
}
