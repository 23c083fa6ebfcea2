package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

type messagesRequestAlias MessagesRequest

var messagesRequestFields = llm.FieldsOf(messagesRequestAlias{})

// UnmarshalJSON refuses duplicates and other spellings of the fields
// tidegate reads (llm.SplitMembers); unknown fields are kept in Extra.
func (mr *MessagesRequest) UnmarshalJSON(data []byte) error {
	var a messagesRequestAlias
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	extra, err := llm.SplitMembers(data, messagesRequestFields)
	if err != nil {
		return err
	}
	*mr = MessagesRequest(a)
	mr.Extra = extra
	return nil
}

// Validate checks what Anthropic's API itself rejects, and the bounds
// tidegate puts on the numbers it reads (llm's Limit…).
func (mr *MessagesRequest) Validate() error {
	bad := func(param, msg string) error {
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_value", Param: param, Message: msg}
	}
	if mr.Model == "" {
		return bad("model", "model: Field required")
	}
	if mr.MaxTokens < 1 || mr.MaxTokens > llm.LimitOutputTokens {
		return bad("max_tokens", fmt.Sprintf("max_tokens: must be between 1 and %d, got %d", llm.LimitOutputTokens, mr.MaxTokens))
	}
	if t := mr.Thinking; t != nil && (t.BudgetTokens < 0 || t.BudgetTokens > llm.LimitOutputTokens) {
		return bad("thinking.budget_tokens", fmt.Sprintf("thinking.budget_tokens: must be between 0 and %d, got %d", llm.LimitOutputTokens, t.BudgetTokens))
	}
	if len(mr.Messages) == 0 {
		return bad("messages", "messages: at least one message is required")
	}
	if len(mr.Messages) > llm.LimitMessages {
		return bad("messages", fmt.Sprintf("messages: at most %d messages, got %d", llm.LimitMessages, len(mr.Messages)))
	}
	for i, m := range mr.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return bad("messages", fmt.Sprintf("messages.%d.role: must be user or assistant, got %q", i, m.Role))
		}
	}
	return nil
}

// ToChatRequest translates an Anthropic request into an OpenAI chat request,
// so any provider can serve /v1/messages. What a chat request cannot carry
// (documents, images in tool results, server tools, containers, …) is
// refused with a KindUnsupported error rather than dropped; hints with no
// meaning elsewhere (cache_control, thinking signatures) are left behind.
func ToChatRequest(mr *MessagesRequest) (*llm.ChatRequest, error) {
	req := &llm.ChatRequest{Model: mr.Model, Stream: mr.Stream, Temperature: mr.Temperature, TopP: mr.TopP,
		MaxTokens: llm.Ptr(mr.MaxTokens)}
	if len(mr.StopSequences) > 0 {
		req.Stop = mr.StopSequences
	}
	if mr.Stream {
		req.StreamOptions = &llm.StreamOptions{IncludeUsage: true}
	}
	if mr.TopK != nil {
		req.Extra = map[string]json.RawMessage{"top_k": json.RawMessage(fmt.Sprint(*mr.TopK))}
	}
	if mr.Metadata != nil {
		req.User = mr.Metadata.UserID
	}
	if mr.Thinking != nil && mr.Thinking.Type == "enabled" {
		switch b := mr.Thinking.BudgetTokens; {
		case b < 2048:
			req.ReasoningEffort = "low"
		case b < 8192:
			req.ReasoningEffort = "medium"
		default:
			req.ReasoningEffort = "high"
		}
	}
	if err := carryExtra(mr, req); err != nil {
		return nil, err
	}
	for i, t := range mr.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, cannotCarry(fmt.Sprintf("tools.%d.type", i), "server tool %q", t.Type)
		}
		req.Tools = append(req.Tools, llm.Tool{Type: "function",
			Function: llm.ToolFunction{Name: t.Name, Description: t.Description, Parameters: t.InputSchema}})
	}
	if tc := mr.ToolChoice; tc != nil && len(mr.Tools) > 0 {
		switch tc.Type {
		case "any":
			req.ToolChoice = json.RawMessage(`"required"`)
		case "none":
			req.ToolChoice = json.RawMessage(`"none"`)
		case "tool":
			b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
			req.ToolChoice = b
		default:
			req.ToolChoice = json.RawMessage(`"auto"`)
		}
		if tc.DisableParallelToolUse {
			req.ParallelToolCalls = llm.Ptr(false)
		}
	}
	if len(mr.System) > 0 {
		var sys []string
		for _, b := range mr.System {
			sys = append(sys, b.Text)
		}
		req.Messages = append(req.Messages, llm.Message{Role: "system", Content: llm.TextContent(strings.Join(sys, "\n\n"))})
	}
	for i, m := range mr.Messages {
		if m.Role == "assistant" {
			req.Messages = append(req.Messages, assistantMessage(m.Content))
			continue
		}
		// Tool results become tool messages, which OpenAI wants right after
		// the assistant's calls; any other user content follows them.
		var parts []llm.ContentPart
		for j, b := range m.Content {
			switch b.Type {
			case "tool_result":
				text, err := toolResultText(b)
				if err != nil {
					return nil, cannotCarry(fmt.Sprintf("messages.%d.content.%d.content", i, j), "%v in a tool result", err)
				}
				req.Messages = append(req.Messages, llm.Message{Role: "tool", ToolCallID: b.ToolUseID, Content: llm.TextContent(text)})
			case "text":
				parts = append(parts, llm.ContentPart{Type: "text", Text: b.Text})
			case "image":
				if b.Source == nil || (b.Source.Type != "base64" && b.Source.Type != "url") {
					return nil, cannotCarry(fmt.Sprintf("messages.%d.content.%d.source", i, j), "an image that is not base64 or a URL")
				}
				u := b.Source.URL
				if b.Source.Type == "base64" {
					u = "data:" + b.Source.MediaType + ";base64," + b.Source.Data
				}
				parts = append(parts, llm.ContentPart{Type: "image_url", ImageURL: &llm.ImageURL{URL: u}})
			default:
				return nil, cannotCarry(fmt.Sprintf("messages.%d.content.%d.type", i, j), "a %q block", b.Type)
			}
		}
		switch {
		case len(parts) == 1 && parts[0].Type == "text":
			req.Messages = append(req.Messages, llm.Message{Role: "user", Content: llm.TextContent(parts[0].Text)})
		case len(parts) > 0:
			req.Messages = append(req.Messages, llm.Message{Role: "user", Content: llm.Content{Parts: parts, Set: true}})
		}
	}
	return req, nil
}

// cannotCarry refuses what a chat translation would lose. The kind lets a
// plan go on to a target that speaks Anthropic natively; with none, the
// client gets a 400 naming the field.
func cannotCarry(param, format string, args ...any) *provider.Error {
	return &provider.Error{Kind: provider.KindUnsupported, Code: "unsupported_content", Param: param,
		Message: fmt.Sprintf(format, args...) + " cannot be sent to this model: only a target that speaks Anthropic's Messages API can take it"}
}

// outputConfig is the part of output_config a chat request can carry.
type outputConfig struct {
	Effort string `json:"effort,omitempty"`
	Format *struct {
		Type   string          `json:"type"`
		Schema json.RawMessage `json:"schema"`
	} `json:"format,omitempty"`
}

// hints are members with no meaning to other providers, left behind like
// cache_control on blocks: automatic caching, where the request runs.
var hints = map[string]bool{"cache_control": true, "inference_geo": true}

// carryExtra maps the members MessagesRequest does not read: a chat request
// carries output_config's effort and JSON schema; hints are left; anything
// else is refused.
func carryExtra(mr *MessagesRequest, req *llm.ChatRequest) error {
	for name, raw := range mr.Extra {
		if hints[name] {
			continue
		}
		if name != "output_config" {
			return cannotCarry(name, "%s", name)
		}
		var oc outputConfig
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&oc); err != nil {
			return cannotCarry(name, "this output_config")
		}
		if oc.Effort != "" && req.ReasoningEffort == "" {
			req.ReasoningEffort = oc.Effort
		}
		if f := oc.Format; f != nil {
			if f.Type != "json_schema" || len(f.Schema) == 0 {
				return cannotCarry(name+".format", "output format %q", f.Type)
			}
			js, _ := json.Marshal(map[string]any{"name": "output", "strict": true, "schema": f.Schema})
			req.ResponseFormat = &llm.ResponseFormat{Type: "json_schema", JSONSchema: js}
		}
	}
	return nil
}

func assistantMessage(blocks Blocks) llm.Message {
	msg := llm.Message{Role: "assistant"}
	var text, thinking strings.Builder
	for _, b := range blocks {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "thinking":
			thinking.WriteString(b.Thinking)
		case "tool_use":
			args := llm.CompactJSON(b.Input)
			msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{ID: b.ID, Type: "function",
				Function: llm.FunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	if text.Len() > 0 || len(msg.ToolCalls) == 0 {
		msg.Content = llm.TextContent(text.String())
	}
	msg.ReasoningContent = thinking.String()
	return msg
}

// toolResultText flattens a tool_result's content (a string or text
// blocks); an error marks it as one (OpenAI's tool message has no flag). A
// block of any other kind cannot be carried.
func toolResultText(b Block) (string, error) {
	var s string
	if len(b.Content) > 0 && json.Unmarshal(b.Content, &s) != nil {
		var blocks []Block
		if err := json.Unmarshal(b.Content, &blocks); err != nil {
			return "", err
		}
		var out []string
		for _, x := range blocks {
			if x.Type != "text" {
				return "", fmt.Errorf("a %q block", x.Type)
			}
			out = append(out, x.Text)
		}
		s = strings.Join(out, "\n")
	}
	if b.IsError {
		s = "Error: " + s
	}
	return s, nil
}

// AnthropicUsage converts the normal form back: input excludes cached tokens.
func AnthropicUsage(u *llm.Usage) Usage {
	if u == nil {
		return Usage{}
	}
	cached, written := 0, 0
	if u.PromptTokensDetails != nil {
		cached, written = u.PromptTokensDetails.CachedTokens, u.PromptTokensDetails.CacheWriteTokens
	}
	return Usage{InputTokens: max(0, u.PromptTokens-cached-written), OutputTokens: u.CompletionTokens,
		CacheReadInputTokens: cached, CacheCreationInputTokens: written}
}

// mediaBytes is the flat size counted for an image or a document, as the
// chat estimate counts an image part.
const mediaBytes = 1024

// PromptBytes sizes the prompt for planning and the budget reservation:
// its text, tool calls, results and definitions, and a flat allowance for
// each image or document (their encoded bytes say little of their tokens).
func (mr *MessagesRequest) PromptBytes() int64 {
	var n int64
	var blocks func(bs []Block)
	blocks = func(bs []Block) {
		for _, b := range bs {
			n += int64(len(b.Text) + len(b.Thinking) + len(b.Input) + len(b.Name) + 16)
			switch {
			case b.Type == "image" || b.Type == "document":
				n += mediaBytes
			case b.Type == "tool_result":
				var inner Blocks
				if json.Unmarshal(b.Content, &inner) == nil {
					blocks(inner)
				}
			}
		}
	}
	blocks(mr.System)
	for _, m := range mr.Messages {
		blocks(m.Content)
	}
	for _, t := range mr.Tools {
		n += int64(len(t.Name) + len(t.Description) + len(t.InputSchema))
	}
	return n
}

// Needs lists the capabilities the request needs of a model ("tools", "vision").
func (mr *MessagesRequest) Needs() []string {
	var out []string
	if len(mr.Tools) > 0 {
		out = append(out, "tools")
	}
	for _, m := range mr.Messages {
		for _, b := range m.Content {
			if b.Type == "image" || (b.Type == "tool_result" && bytes.Contains(b.Content, []byte(`"image"`))) {
				return append(out, "vision")
			}
		}
	}
	return out
}

// ToolUseID gives a translated tool call an Anthropic-style id, as the
// SDKs and clients that check the prefix expect.
func ToolUseID(id string) string {
	if strings.HasPrefix(id, "toolu_") {
		return id
	}
	return "toolu_" + id
}

// MessageID gives an answer an Anthropic-style id.
func MessageID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + id
}

// FromChatResponse translates an OpenAI answer into an Anthropic one.
func FromChatResponse(resp *llm.ChatResponse) *MessagesResponse {
	out := &MessagesResponse{ID: MessageID(resp.ID), Type: "message", Role: "assistant", Model: resp.Model,
		Content: []Block{}, Usage: AnthropicUsage(resp.Usage)}
	stop := "end_turn"
	if len(resp.Choices) > 0 {
		ch := resp.Choices[0]
		if ch.Message.ReasoningContent != "" {
			out.Content = append(out.Content, Block{Type: "thinking", Thinking: ch.Message.ReasoningContent})
		}
		if text := ch.Message.Content.String(); text != "" {
			out.Content = append(out.Content, Block{Type: "text", Text: text})
		}
		for _, tc := range ch.Message.ToolCalls {
			out.Content = append(out.Content, Block{Type: "tool_use", ID: ToolUseID(tc.ID), Name: tc.Function.Name, Input: toolInput(tc.Function.Arguments)})
		}
		stop = StopReason(ch.FinishReason)
	}
	out.StopReason = &stop
	return out
}

// toolInput turns OpenAI's argument string into Anthropic's input object.
func toolInput(args string) json.RawMessage {
	if args == "" || !json.Valid([]byte(args)) {
		return json.RawMessage("{}")
	}
	return json.RawMessage(args)
}
