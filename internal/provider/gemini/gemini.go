// Package gemini is Google's Gemini dialect: native generateContent and
// streamGenerateContent, usageMetadata, batchEmbedContents.
package gemini

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/sse"
)

// DefaultBaseURL is the Generative Language API.
const DefaultBaseURL = "https://generativelanguage.googleapis.com/v1beta"

// Client calls the Gemini API.
// Every exported method (and its stream's Err) passes its error through
// provider.Scrub with the client's key before it leaves.
type Client struct {
	Name    string
	BaseURL string // includes the version, e.g. …/v1beta
	APIKey  string
	HTTP    *http.Client
}

func (c *Client) url(model, method string) string {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + "/models/" + url.PathEscape(model) + ":" + method
}

func (c *Client) post(ctx context.Context, u string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Message: "cannot encode request", Err: err}
	}
	h := make(http.Header, 2)
	h.Set("x-goog-api-key", c.APIKey)
	return provider.Call(ctx, c.HTTP, c.Name, u, h, b, c.fail)
}

// statusKinds maps google.rpc status names.
var statusKinds = map[string]provider.Kind{
	"INVALID_ARGUMENT":    provider.KindInvalidRequest,
	"FAILED_PRECONDITION": provider.KindInvalidRequest,
	"UNAUTHENTICATED":     provider.KindUpstreamAuth,
	"PERMISSION_DENIED":   provider.KindUpstreamAuth,
	"NOT_FOUND":           provider.KindNotFound,
	"RESOURCE_EXHAUSTED":  provider.KindRateLimited,
	"UNAVAILABLE":         provider.KindOverloaded,
	"DEADLINE_EXCEEDED":   provider.KindTimeout,
	"INTERNAL":            provider.KindUpstream,
}

func (c *Client) fail(status int, h http.Header, body []byte) *provider.Error {
	var env struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
			Details []struct {
				Reason string `json:"reason"`
			} `json:"details"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &env)
	e := &provider.Error{Kind: provider.KindForStatus(status), Provider: c.Name, Status: status,
		Code: env.Error.Status, Message: env.Error.Message}
	if e.Message == "" {
		e.Quote(body) // shown once scrubbed
	}
	if k, ok := statusKinds[env.Error.Status]; ok {
		e.Kind = k
	}
	for _, d := range env.Error.Details {
		if d.Reason == "API_KEY_INVALID" { // Gemini answers a bad key with 400
			e.Kind = provider.KindUpstreamAuth
		}
	}
	if e.Kind == provider.KindInvalidRequest {
		if k, ok := e.MessageKind(); ok {
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
	gr, err := FromChatRequest(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, c.url(req.Model, "generateContent"), gr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := provider.ReadBody(resp)
	if err != nil {
		return nil, err
	}
	var g Response
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, provider.BadResponse("upstream %s sent unreadable JSON", c.Name).Quote(b)
	}
	if len(g.Candidates) == 0 {
		return nil, c.blocked(&g)
	}
	out := &llm.ChatResponse{ID: responseID(g.ResponseID), Object: "chat.completion", Created: time.Now().Unix(), Model: modelName(g.ModelVersion, req.Model)}
	for i, cand := range g.Candidates {
		msg, finish := candidateMessage(cand, i)
		out.Choices = append(out.Choices, llm.Choice{Index: i, Message: msg, FinishReason: finish})
	}
	out.Usage = ChatUsage(g.UsageMetadata)
	return out, nil
}

func (c *Client) blocked(g *Response) *provider.Error {
	reason := "no candidates"
	if g.PromptFeedback != nil && g.PromptFeedback.BlockReason != "" {
		reason = "prompt blocked: " + g.PromptFeedback.BlockReason
		return &provider.Error{Kind: provider.KindContentFilter, Code: "content_filter", Provider: c.Name, Message: reason}
	}
	return provider.BadResponse("upstream %s answered with %s", c.Name, reason)
}

func responseID(id string) string {
	if id == "" {
		return fmt.Sprintf("chatcmpl-gemini-%d", time.Now().UnixNano())
	}
	return "chatcmpl-" + id
}

func modelName(version, requested string) string {
	if version != "" {
		return version
	}
	return requested
}

// candidateMessage converts a candidate; thought parts become reasoning_content.
func candidateMessage(cand Candidate, choice int) (llm.Message, string) {
	msg := llm.Message{Role: "assistant"}
	var text, thought strings.Builder
	for j, p := range cand.Content.Parts {
		switch {
		case p.FunctionCall != nil:
			args := llm.CompactJSON(p.FunctionCall.Args)
			msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{ID: fmt.Sprintf("call_%d_%d", choice, j), Type: "function",
				Function: llm.FunctionCall{Name: p.FunctionCall.Name, Arguments: args}})
		case p.Thought:
			thought.WriteString(p.Text)
		default:
			text.WriteString(p.Text)
		}
	}
	if text.Len() > 0 || len(msg.ToolCalls) == 0 {
		msg.Content = llm.TextContent(text.String())
	}
	msg.ReasoningContent = thought.String()
	finish := FinishReason(cand.FinishReason)
	if len(msg.ToolCalls) > 0 && finish == llm.FinishStop {
		finish = llm.FinishToolCalls
	}
	return msg, finish
}

// FinishReason maps Gemini's finishReason.
func FinishReason(r string) string {
	switch r {
	case "MAX_TOKENS":
		return llm.FinishLength
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
		return llm.FinishContentFilter
	default:
		return llm.FinishStop
	}
}

// ChatUsage normalises usageMetadata. Completion tokens include thoughts, as
// OpenAI counts reasoning; the total is Gemini's own (providers.md §1.1).
func ChatUsage(u *UsageMetadata) *llm.Usage {
	if u == nil {
		return nil
	}
	out := &llm.Usage{PromptTokens: u.PromptTokenCount, CompletionTokens: u.CandidatesTokenCount + u.ThoughtsTokenCount,
		TotalTokens: u.TotalTokenCount}
	if out.TotalTokens == 0 {
		out.TotalTokens = out.PromptTokens + out.CompletionTokens
	}
	if u.CachedContentTokenCount > 0 {
		out.PromptTokensDetails = &llm.PromptTokensDetails{CachedTokens: u.CachedContentTokenCount}
	}
	if u.ThoughtsTokenCount > 0 {
		out.CompletionTokensDetails = &llm.CompletionTokensDetails{ReasoningTokens: u.ThoughtsTokenCount}
	}
	out.Raw, _ = json.Marshal(u)
	return out
}

func (c *Client) ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (_ provider.ChatStream, err error) {
	defer provider.Guard(&err, c.APIKey)
	gr, err := FromChatRequest(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, c.url(req.Model, "streamGenerateContent")+"?alt=sse", gr)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		// A plain JSON answer to a stream request: an error or a blocked prompt.
		defer resp.Body.Close()
		b, err := provider.ReadBody(resp)
		if err != nil {
			return nil, err
		}
		var g Response
		if json.Unmarshal(b, &g) == nil && len(g.Error) > 0 {
			return nil, c.fail(resp.StatusCode, resp.Header, b)
		}
		if len(g.Candidates) == 0 {
			return nil, c.blocked(&g)
		}
		return nil, provider.BadResponse("upstream %s answered a stream request with JSON", c.Name)
	}
	return &stream{c: c, body: resp.Body, r: sse.NewReader(resp.Body), model: req.Model,
		id: responseID(""), created: time.Now().Unix()}, nil
}

type stream struct {
	c       *Client
	body    interface{ Close() error }
	r       *sse.Reader
	model   string
	id      string
	created int64

	queue    []llm.ChatChunk
	cur      llm.ChatChunk
	usage    *UsageMetadata
	roleSent bool
	finished bool
	ended    bool
	tools    int
	err      error
}

func (s *stream) base() llm.ChatChunk {
	return llm.ChatChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model}
}

func (s *stream) Next() bool {
	for len(s.queue) == 0 {
		if s.ended || s.err != nil {
			return false
		}
		s.fill()
	}
	s.cur, s.queue = s.queue[0], s.queue[1:]
	return true
}

// fill reads one event and queues the chunks it makes.
func (s *stream) fill() {
	if !s.r.Next() {
		if err := s.r.Err(); err != nil {
			e := provider.ClassifyTransport(err)
			e.Provider = s.c.Name
			s.err = e
			return
		}
		s.ended = true
		if !s.finished {
			s.err = &provider.Error{Kind: provider.KindUnavailable, Provider: s.c.Name, Message: "upstream stream ended before a finish reason"}
			return
		}
		u := s.base()
		u.Choices = []llm.ChunkChoice{}
		u.Usage = ChatUsage(s.usage)
		if u.Usage != nil {
			s.queue = append(s.queue, u)
		}
		return
	}
	data := s.r.Event().Data
	var g Response
	if err := json.Unmarshal(data, &g); err != nil {
		s.err = provider.BadResponse("upstream %s sent a malformed stream event", s.c.Name).Quote(data)
		return
	}
	if g.Error != nil {
		s.err = s.c.fail(http.StatusOK, nil, data)
		if s.err.(*provider.Error).Kind == provider.KindBadResponse {
			s.err.(*provider.Error).Kind = provider.KindUpstream
		}
		return
	}
	if g.UsageMetadata != nil {
		s.usage = g.UsageMetadata
	}
	if g.ModelVersion != "" {
		s.model = g.ModelVersion
	}
	if len(g.Candidates) == 0 {
		if g.PromptFeedback != nil && g.PromptFeedback.BlockReason != "" {
			s.err = s.c.blocked(&g)
		}
		return
	}
	if !s.roleSent {
		s.roleSent = true
		c := s.base()
		c.Choices = []llm.ChunkChoice{{Delta: llm.Delta{Role: "assistant", Content: llm.Ptr("")}}}
		s.queue = append(s.queue, c)
	}
	cand := g.Candidates[0]
	for _, p := range cand.Content.Parts {
		c := s.base()
		var d llm.Delta
		switch {
		case p.FunctionCall != nil:
			args := llm.CompactJSON(p.FunctionCall.Args)
			d.ToolCalls = []llm.ToolCall{{Index: llm.Ptr(s.tools), ID: fmt.Sprintf("call_0_%d", s.tools), Type: "function",
				Function: llm.FunctionCall{Name: p.FunctionCall.Name, Arguments: args}}}
			s.tools++
		case p.Thought:
			d.ReasoningContent = llm.Ptr(p.Text)
		case p.Text != "":
			d.Content = llm.Ptr(p.Text)
		default:
			continue
		}
		c.Choices = []llm.ChunkChoice{{Delta: d}}
		s.queue = append(s.queue, c)
	}
	if cand.FinishReason != "" {
		s.finished = true
		finish := FinishReason(cand.FinishReason)
		if s.tools > 0 && finish == llm.FinishStop {
			finish = llm.FinishToolCalls
		}
		c := s.base()
		c.Choices = []llm.ChunkChoice{{Delta: llm.Delta{}, FinishReason: llm.Ptr(finish)}}
		s.queue = append(s.queue, c)
	}
}

func (s *stream) Chunk() *llm.ChatChunk { return &s.cur }
func (s *stream) Err() error            { return provider.Scrub(s.err, s.c.APIKey) }
func (s *stream) Buffered() bool        { return len(s.queue) > 0 || s.r.Buffered() }
func (s *stream) Close() error          { return s.body.Close() }

// Embeddings uses batchEmbedContents.
func (c *Client) Embeddings(ctx context.Context, req *llm.EmbeddingRequest) (_ *llm.EmbeddingResponse, err error) {
	defer provider.Guard(&err, c.APIKey)
	texts, ok := req.Inputs()
	if !ok {
		return nil, provider.Errorf(provider.KindInvalidRequest, "invalid_input", "Gemini embeds text input only")
	}
	type content struct {
		Parts []Part `json:"parts"`
	}
	type one struct {
		Model                string  `json:"model"`
		Content              content `json:"content"`
		OutputDimensionality *int    `json:"outputDimensionality,omitempty"`
	}
	body := struct {
		Requests []one `json:"requests"`
	}{}
	for _, t := range texts {
		body.Requests = append(body.Requests, one{Model: "models/" + req.Model, Content: content{Parts: []Part{{Text: t}}}, OutputDimensionality: req.Dimensions})
	}
	resp, err := c.post(ctx, c.url(req.Model, "batchEmbedContents"), body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := provider.ReadBody(resp)
	if err != nil {
		return nil, err
	}
	var out struct {
		Embeddings []struct {
			Values json.RawMessage `json:"values"`
		} `json:"embeddings"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Embeddings) != len(texts) {
		return nil, provider.BadResponse("upstream %s sent an unreadable embeddings answer", c.Name).Quote(b)
	}
	res := &llm.EmbeddingResponse{Object: "list", Model: req.Model, Usage: &llm.Usage{}}
	for i, e := range out.Embeddings {
		res.Data = append(res.Data, llm.Embedding{Object: "embedding", Index: i, Embedding: e.Values})
	}
	return res, nil
}
