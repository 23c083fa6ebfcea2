package responses

import (
	"encoding/json"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
)

// NewID makes an id with a type prefix ("resp", "msg", "fc", "rs"); the
// handler passes ids.New, tests a counter.
type NewID func(prefix string) string

// Status of a response.
const (
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusIncomplete = "incomplete"
	StatusFailed     = "failed"
)

// Base is the response a request starts: in progress, no output, the
// request's settings echoed as OpenAI echoes them (its defaults filled in).
func Base(r *Request, id string, created time.Time) *Response {
	resp := &Response{ID: id, Object: "response", CreatedAt: created.Unix(), Status: StatusInProgress,
		Instructions: r.Instructions, MaxOutputTokens: r.MaxOutputTokens, Model: r.Model, Output: []OutputItem{},
		ParallelToolCalls: r.ParallelToolCalls == nil || *r.ParallelToolCalls, Store: r.Stored(),
		Temperature: r.Temperature, TopP: r.TopP, Text: TextParam{Format: &Format{Type: "text"}},
		ToolChoice: json.RawMessage(`"auto"`), Tools: []EchoTool{}, Truncation: "disabled", Metadata: map[string]string{}}
	if r.PreviousResponseID != "" {
		resp.PreviousResponseID = llm.Ptr(r.PreviousResponseID)
	}
	if r.Reasoning != nil {
		resp.Reasoning = *r.Reasoning
	}
	if r.Text != nil {
		resp.Text.Verbosity = r.Text.Verbosity
		if r.Text.Format != nil {
			resp.Text.Format = r.Text.Format
		}
	}
	if len(r.ToolChoice) > 0 && string(r.ToolChoice) != "null" {
		resp.ToolChoice = r.ToolChoice
	}
	for _, t := range r.Tools {
		e := EchoTool{Type: t.Type, Name: t.Name, Parameters: t.Parameters, Strict: t.Strict}
		if t.Description != "" {
			e.Description = llm.Ptr(t.Description)
		}
		resp.Tools = append(resp.Tools, e)
	}
	if r.User != "" {
		resp.User = llm.Ptr(r.User)
	}
	for k, v := range r.Metadata {
		resp.Metadata[k] = v
	}
	return resp
}

// FromChat completes base with a chat answer: its first choice becomes
// output items (reasoning, the message, function calls), its usage the
// response's.
func FromChat(base *Response, c *llm.ChatResponse, newID NewID, done time.Time) *Response {
	resp := *base
	resp.Output = []OutputItem{}
	if c.Model != "" {
		resp.Model = c.Model
	}
	finish := llm.FinishStop
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		m := ch.Message
		if m.ReasoningContent != "" {
			resp.Output = append(resp.Output, OutputItem{Type: "reasoning", ID: newID("rs"),
				Content: []OutputPart{{Type: "reasoning_text", Text: m.ReasoningContent}}})
		}
		var parts []OutputPart
		if text := m.Content.String(); text != "" {
			parts = append(parts, OutputPart{Type: "output_text", Text: text})
		}
		if m.Refusal != "" {
			parts = append(parts, OutputPart{Type: "refusal", Refusal: m.Refusal})
		}
		if len(parts) > 0 || len(m.ToolCalls) == 0 {
			resp.Output = append(resp.Output, OutputItem{Type: "message", ID: newID("msg"), Status: StatusCompleted,
				Role: "assistant", Content: parts})
		}
		for _, tc := range m.ToolCalls {
			resp.Output = append(resp.Output, OutputItem{Type: "function_call", ID: newID("fc"), Status: StatusCompleted,
				CallID: tc.ID, Name: tc.Function.Name, Arguments: llm.Ptr(tc.Function.Arguments)})
		}
		finish = ch.FinishReason
	}
	resp.Usage = FromUsage(c.Usage)
	Finish(&resp, finish, done)
	return &resp
}

// Finish sets a response's final status from chat's finish reason: cut
// short by the output limit or a filter, it is incomplete and says why.
func Finish(resp *Response, finishReason string, done time.Time) {
	switch finishReason {
	case llm.FinishLength:
		resp.Status, resp.IncompleteDetails = StatusIncomplete, &Incomplete{Reason: "max_output_tokens"}
	case llm.FinishContentFilter:
		resp.Status, resp.IncompleteDetails = StatusIncomplete, &Incomplete{Reason: "content_filter"}
	default:
		resp.Status = StatusCompleted
		resp.CompletedAt = llm.Ptr(done.Unix())
	}
	for i := range resp.Output {
		if resp.Output[i].Type != "reasoning" {
			resp.Output[i].Status = itemStatus(resp.Status)
		}
	}
}

func itemStatus(responseStatus string) string {
	if responseStatus == StatusCompleted {
		return StatusCompleted
	}
	return StatusIncomplete
}

// FromUsage converts chat usage; nil stays nil (the upstream sent none).
func FromUsage(u *llm.Usage) *Usage {
	if u == nil {
		return nil
	}
	out := &Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens,
		InputTokensDetails:  InputTokensDetails{CachedTokens: u.CachedTokens()},
		OutputTokensDetails: OutputTokensDetails{ReasoningTokens: u.ReasoningTokens()}}
	if u.PromptTokensDetails != nil {
		out.InputTokensDetails.CacheWriteTokens = u.PromptTokensDetails.CacheWriteTokens
	}
	if out.TotalTokens == 0 {
		out.TotalTokens = out.InputTokens + out.OutputTokens
	}
	return out
}
