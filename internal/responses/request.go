package responses

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
)

// Bounds OpenAI itself puts on metadata.
const (
	maxMetadataPairs = 16
	maxMetadataKey   = 64
	maxMetadataValue = 512
)

func invalid(param, format string, args ...any) *llm.FieldError {
	return &llm.FieldError{Param: param, Code: "invalid_value", Message: fmt.Sprintf(format, args...)}
}

func unsupported(param, format string, args ...any) *llm.FieldError {
	return &llm.FieldError{Param: param, Code: "unsupported_value", Message: fmt.Sprintf(format, args...)}
}

// Validate checks what OpenAI's API itself rejects and the bounds tidegate
// puts on the numbers it reads, before any history is loaded.
func (r *Request) Validate() error {
	if r.Model == "" {
		return &llm.FieldError{Param: "model", Code: "missing_model", Message: "model is required"}
	}
	if err := llm.Within("max_output_tokens", r.MaxOutputTokens, 1, llm.LimitOutputTokens); err != nil {
		return err
	}
	if t := r.Temperature; t != nil && (*t < 0 || *t > 2) {
		return invalid("temperature", "temperature must be between 0 and 2")
	}
	if p := r.TopP; p != nil && (*p < 0 || *p > 1) {
		return invalid("top_p", "top_p must be between 0 and 1")
	}
	if len(r.Metadata) > maxMetadataPairs {
		return invalid("metadata", "metadata holds at most %d pairs", maxMetadataPairs)
	}
	for k, v := range r.Metadata {
		if len(k) > maxMetadataKey || len(v) > maxMetadataValue {
			return invalid("metadata", "metadata keys hold at most %d characters and values %d", maxMetadataKey, maxMetadataValue)
		}
	}
	if r.Background != nil && *r.Background {
		return unsupported("background", "background responses are not supported by tidegate")
	}
	if len(r.Conversation) > 0 && string(r.Conversation) != "null" {
		return unsupported("conversation", "conversations are not supported by tidegate: use previous_response_id")
	}
	if len(bytes.TrimSpace(r.Input)) == 0 || string(r.Input) == "null" {
		return &llm.FieldError{Param: "input", Code: "missing_required_parameter", Message: "input is required"}
	}
	return nil
}

// InputItems reads a request's input: a string is one user message.
func InputItems(input json.RawMessage) ([]Item, error) {
	var text string
	if json.Unmarshal(input, &text) == nil {
		content, _ := json.Marshal(text)
		return []Item{{Type: "message", Role: "user", Content: content}}, nil
	}
	var items []Item
	if err := json.Unmarshal(input, &items); err != nil {
		return nil, &llm.FieldError{Param: "input", Code: "invalid_type", Message: "input must be a string or an array of items"}
	}
	for i := range items {
		if items[i].Type == "" && items[i].Role != "" {
			items[i].Type = "message" // EasyInputMessage leaves the type out
		}
	}
	return items, nil
}

// History is the conversation a stored response continues: the items it
// answered, then its own output.
func History(s *Stored) ([]Item, error) {
	var items []Item
	if err := json.Unmarshal(s.Input, &items); err != nil {
		return nil, fmt.Errorf("stored response %s: input: %w", s.ID, err)
	}
	var resp struct {
		Output []Item `json:"output"`
	}
	if err := json.Unmarshal(s.Response, &resp); err != nil {
		return nil, fmt.Errorf("stored response %s: %w", s.ID, err)
	}
	return append(items, resp.Output...), nil
}

// ToChat translates a request, continuing history (nil when there is
// none), into a chat request. It returns the whole conversation as items,
// which a stored response keeps.
func ToChat(r *Request, history []Item) (*llm.ChatRequest, []Item, error) {
	input, err := InputItems(r.Input)
	if err != nil {
		return nil, nil, err
	}
	req := &llm.ChatRequest{Model: r.Model, Stream: r.Stream, Temperature: r.Temperature, TopP: r.TopP, User: r.User,
		// max_tokens rather than max_completion_tokens: every OpenAI-compatible
		// server reads it, and the other dialects read either.
		MaxTokens: r.MaxOutputTokens}
	if r.Stream {
		req.StreamOptions = &llm.StreamOptions{IncludeUsage: true} // the usage goes in response.completed
	}
	if r.Instructions != nil && *r.Instructions != "" {
		req.Messages = append(req.Messages, llm.Message{Role: "system", Content: llm.TextContent(*r.Instructions)})
	}
	// History was checked when it was stored; its errors would name the
	// wrong indexes, so it is read as it is.
	hist, _ := messages(history, "history")
	req.Messages = append(req.Messages, hist...)
	msgs, err := messages(input, "input")
	if err != nil {
		return nil, nil, err
	}
	req.Messages = append(req.Messages, msgs...)
	if len(req.Messages) == 0 {
		return nil, nil, invalid("input", "input must hold at least one item")
	}
	if len(req.Messages) > llm.LimitMessages {
		return nil, nil, invalid("input", "at most %d messages, history included, got %d", llm.LimitMessages, len(req.Messages))
	}
	if req.Tools, err = tools(r.Tools); err != nil {
		return nil, nil, err
	}
	if req.ToolChoice, err = toolChoice(r.ToolChoice); err != nil {
		return nil, nil, err
	}
	if len(req.Tools) > 0 {
		req.ParallelToolCalls = r.ParallelToolCalls // chat refuses it without tools
	}
	if r.Text != nil {
		if req.ResponseFormat, err = responseFormat(r.Text.Format); err != nil {
			return nil, nil, err
		}
	}
	if r.Reasoning != nil && r.Reasoning.Effort != nil {
		req.ReasoningEffort = *r.Reasoning.Effort
	}
	return req, append(history[:len(history):len(history)], input...), nil
}

// messages turns items into chat messages. Function calls join the
// assistant message before them, as chat carries them; reasoning goes with
// the next assistant message as its reasoning_content.
func messages(items []Item, param string) ([]llm.Message, error) {
	var out []llm.Message
	assistantOpen := false // the last message is an assistant's that calls may join
	var reasoning strings.Builder
	for i, it := range items {
		at := fmt.Sprintf("%s[%d]", param, i)
		switch it.Type {
		case "message":
			m, err := message(it, at)
			if err != nil {
				return nil, err
			}
			assistantOpen = m.Role == "assistant"
			if assistantOpen {
				m.ReasoningContent, reasoning = reasoning.String(), strings.Builder{}
			}
			out = append(out, m)
		case "function_call":
			if it.CallID == "" || it.Name == "" {
				return nil, invalid(at, "a function_call item needs call_id and name")
			}
			if !assistantOpen {
				out = append(out, llm.Message{Role: "assistant", ReasoningContent: reasoning.String()})
				reasoning, assistantOpen = strings.Builder{}, true
			}
			args := ""
			if it.Arguments != nil {
				args = *it.Arguments
			}
			last := &out[len(out)-1]
			last.ToolCalls = append(last.ToolCalls, llm.ToolCall{ID: it.CallID, Type: "function",
				Function: llm.FunctionCall{Name: it.Name, Arguments: args}})
		case "function_call_output":
			if it.CallID == "" {
				return nil, invalid(at+".call_id", "a function_call_output item needs call_id")
			}
			text, err := outputText(it.Output, at+".output")
			if err != nil {
				return nil, err
			}
			out = append(out, llm.Message{Role: "tool", ToolCallID: it.CallID, Content: llm.TextContent(text)})
			assistantOpen = false
		case "reasoning":
			reasoning.WriteString(reasoningText(it.Content))
		case "":
			return nil, invalid(at+".type", "an item needs a type")
		default:
			return nil, unsupported(at+".type", "item type %q is not supported by tidegate", it.Type)
		}
	}
	return out, nil
}

var messageRoles = map[string]bool{"user": true, "assistant": true, "system": true, "developer": true}

// message translates a message item; its content is a string or parts.
func message(it Item, at string) (llm.Message, error) {
	if !messageRoles[it.Role] {
		return llm.Message{}, invalid(at+".role", "role must be user, assistant, system or developer, got %q", it.Role)
	}
	m := llm.Message{Role: it.Role}
	var text string
	if json.Unmarshal(it.Content, &text) == nil {
		m.Content = llm.TextContent(text)
		return m, nil
	}
	var parts []Part
	if err := json.Unmarshal(it.Content, &parts); err != nil {
		return m, &llm.FieldError{Param: at + ".content", Code: "invalid_type", Message: "content must be a string or an array of parts"}
	}
	var out []llm.ContentPart
	for j, p := range parts {
		pat := fmt.Sprintf("%s.content[%d]", at, j)
		switch p.Type {
		case "input_text", "output_text":
			out = append(out, llm.ContentPart{Type: "text", Text: p.Text})
		case "refusal":
			out = append(out, llm.ContentPart{Type: "text", Text: p.Refusal})
		case "input_image":
			if p.ImageURL == "" {
				return m, unsupported(pat+".image_url", "input_image needs image_url (a URL or a data: URL); file ids are not supported")
			}
			if it.Role != "user" {
				return m, invalid(pat, "images are only allowed in user messages")
			}
			out = append(out, llm.ContentPart{Type: "image_url", ImageURL: &llm.ImageURL{URL: p.ImageURL, Detail: p.Detail}})
		default:
			return m, unsupported(pat+".type", "content part type %q is not supported by tidegate", p.Type)
		}
	}
	if it.Role == "user" && hasImage(out) {
		m.Content = llm.Content{Parts: out, Set: true}
		return m, nil
	}
	// Text only: one string, which every provider takes in every role.
	m.Content = llm.TextContent(llm.Content{Parts: out, Set: true}.String())
	return m, nil
}

func hasImage(parts []llm.ContentPart) bool {
	for _, p := range parts {
		if p.Type == "image_url" {
			return true
		}
	}
	return false
}

// outputText reads a function_call_output's output: a string or text parts.
func outputText(raw json.RawMessage, at string) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []Part
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", &llm.FieldError{Param: at, Code: "invalid_type", Message: "output must be a string or an array of parts"}
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "input_text" && p.Type != "output_text" {
			return "", unsupported(fmt.Sprintf("%s[%d].type", at, j), "tool output part type %q is not supported by tidegate", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// reasoningText joins a reasoning item's reasoning_text parts.
func reasoningText(raw json.RawMessage) string {
	var parts []Part
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "reasoning_text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func tools(ts []Tool) ([]llm.Tool, error) {
	var out []llm.Tool
	for i, t := range ts {
		if t.Type != "function" {
			return nil, unsupported(fmt.Sprintf("tools[%d].type", i), "tool type %q is not supported by tidegate: only function tools", t.Type)
		}
		if t.Name == "" {
			return nil, invalid(fmt.Sprintf("tools[%d].name", i), "a function tool needs a name")
		}
		out = append(out, llm.Tool{Type: "function",
			Function: llm.ToolFunction{Name: t.Name, Description: t.Description, Parameters: t.Parameters, Strict: t.Strict}})
	}
	return out, nil
}

// toolChoice translates tool_choice: the modes pass as they are, a named
// function takes chat's nested shape.
func toolChoice(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		switch mode {
		case "auto", "none", "required":
			return raw, nil
		}
		return nil, invalid("tool_choice", "tool_choice must be auto, none, required or a function, got %q", mode)
	}
	var named struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(raw, &named) != nil || named.Type != "function" || named.Name == "" {
		return nil, unsupported("tool_choice", "tool_choice must be auto, none, required or {\"type\":\"function\",\"name\":…}")
	}
	b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": named.Name}})
	return b, nil
}

// responseFormat translates text.format to chat's response_format.
func responseFormat(f *Format) (*llm.ResponseFormat, error) {
	if f == nil {
		return nil, nil
	}
	switch f.Type {
	case "text":
		return nil, nil
	case "json_object":
		return &llm.ResponseFormat{Type: "json_object"}, nil
	case "json_schema":
		if f.Name == "" || len(f.Schema) == 0 {
			return nil, invalid("text.format", "a json_schema format needs name and schema")
		}
		b, err := json.Marshal(struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict,omitempty"`
		}{f.Name, f.Description, f.Schema, f.Strict})
		if err != nil {
			return nil, invalid("text.format.schema", "schema is not valid JSON")
		}
		return &llm.ResponseFormat{Type: "json_schema", JSONSchema: b}, nil
	}
	return nil, invalid("text.format.type", "text.format.type must be text, json_object or json_schema, got %q", f.Type)
}
