// Package providertest holds the conformance suite every dialect and preset
// runs: recorded wire fixtures of each provider (testdata/TYPE/) replayed by a
// loopback server, and the normal form each must translate to.
package providertest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// Recorded is what the replay server received.
type Recorded struct {
	Method string
	Path   string // with the query
	Header http.Header
	Body   []byte
}

// Replay answers every request with one canned status and body, and records
// the request. Content-Type follows the body: SSE for .sse fixtures.
type Replay struct {
	Server *httptest.Server

	mu     sync.Mutex
	status int
	body   []byte
	sse    bool
	last   Recorded
}

func NewReplay(t *testing.T) *Replay {
	r := &Replay{status: http.StatusOK}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Server.Close)
	return r
}

// Answer sets the next answers.
func (r *Replay) Answer(status int, body []byte, sse bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.body, r.sse = status, body, sse
}

// Last returns the last request received.
func (r *Replay) Last() Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *Replay) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.last = Recorded{Method: req.Method, Path: req.URL.RequestURI(), Header: req.Header.Clone(), Body: body}
	status, answer, sse := r.status, r.body, r.sse
	r.mu.Unlock()
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

// Summary is the normal form of a stream, accumulated: what a client ends up with.
type Summary struct {
	Chunks    int            `json:"chunks"`
	Content   string         `json:"content"`
	Reasoning string         `json:"reasoning,omitempty"`
	ToolCalls []llm.ToolCall `json:"tool_calls,omitempty"`
	Finish    string         `json:"finish_reason"`
	Usage     *llm.Usage     `json:"usage"`
}

// Drain reads a stream to its end and accumulates it.
func Drain(s provider.ChatStream) (Summary, error) {
	defer s.Close()
	var sum Summary
	var content, reasoning strings.Builder
	for s.Next() {
		c := s.Chunk()
		sum.Chunks++
		if c.Usage != nil {
			sum.Usage = c.Usage
		}
		for _, ch := range c.Choices {
			d := ch.Delta
			if d.Content != nil {
				content.WriteString(*d.Content)
			}
			if d.ReasoningContent != nil {
				reasoning.WriteString(*d.ReasoningContent)
			}
			for _, tc := range d.ToolCalls {
				i := 0
				if tc.Index != nil {
					i = *tc.Index
				}
				for len(sum.ToolCalls) <= i {
					sum.ToolCalls = append(sum.ToolCalls, llm.ToolCall{Type: "function"})
				}
				acc := &sum.ToolCalls[i]
				if tc.ID != "" {
					acc.ID = tc.ID
				}
				if tc.Function.Name != "" {
					acc.Function.Name = tc.Function.Name
				}
				acc.Function.Arguments += tc.Function.Arguments
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				sum.Finish = *ch.FinishReason
			}
		}
	}
	sum.Content, sum.Reasoning = content.String(), reasoning.String()
	return sum, s.Err()
}

// StandardRequest exercises what translation must carry: system, a tool call
// and its result, tools, stop, sampling limits.
func StandardRequest() *llm.ChatRequest {
	return &llm.ChatRequest{
		Model: "model-x",
		Messages: []llm.Message{
			{Role: "system", Content: llm.TextContent("You are terse.")},
			{Role: "user", Content: llm.TextContent("Weather in Hangzhou?")},
			{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: "call_1", Type: "function",
				Function: llm.FunctionCall{Name: "get_weather", Arguments: `{"city":"Hangzhou"}`}}}},
			{Role: "tool", ToolCallID: "call_1", Content: llm.TextContent(`{"temp_c":21}`)},
			{Role: "user", Content: llm.Content{Set: true, Parts: []llm.ContentPart{
				{Type: "text", Text: "And this picture?"},
				{Type: "image_url", ImageURL: &llm.ImageURL{URL: "data:image/png;base64,iVBORw0KGgo="}},
			}}},
		},
		Tools: []llm.Tool{{Type: "function", Function: llm.ToolFunction{Name: "get_weather", Description: "Weather in a city",
			Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`)}}},
		MaxTokens:   llm.Ptr(256),
		Temperature: llm.Ptr(0.7),
		TopP:        llm.Ptr(1.0),
		Stop:        llm.Stop{"END"},
		Extra:       map[string]json.RawMessage{"vendor_option": json.RawMessage(`{"enabled":true}`)},
	}
}
