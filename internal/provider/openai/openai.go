// Package openai is the OpenAI chat-completions dialect, spoken by OpenAI and,
// through presets, by every OpenAI-compatible vendor and self-hosted server.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/sse"
)

// Client calls one OpenAI-compatible upstream.
// Every exported method (and its stream's Err) passes its error through
// provider.Scrub with the client's key before it leaves.
type Client struct {
	Name    string // the provider's configured name, for errors
	Preset  provider.Preset
	BaseURL string // overrides Preset.BaseURL when set
	APIKey  string
	HTTP    *http.Client
}

func (c *Client) url(path string) string {
	base := c.BaseURL
	if base == "" {
		base = c.Preset.BaseURL
	}
	return strings.TrimRight(base, "/") + path
}

func (c *Client) header() http.Header {
	h := make(http.Header, 4)
	if c.APIKey != "" {
		h.Set("Authorization", "Bearer "+c.APIKey)
	}
	return h
}

func (c *Client) post(ctx context.Context, path string, body []byte) (*http.Response, error) {
	return provider.Call(ctx, c.HTTP, c.Name, c.url(path), c.header(), body, c.fail)
}

func (c *Client) fail(status int, h http.Header, body []byte) *provider.Error {
	return classify(c.Name, status, h, body)
}

// errorIn returns the error a 2xx body hides (MiniMax, Baidu and others answer
// errors with status 200), or nil.
func (c *Client) errorIn(resp *http.Response, body []byte) *provider.Error {
	if !mayHoldError(body) {
		return nil
	}
	if _, _, _, _, isErr := bodyError(body); !isErr {
		return nil
	}
	return c.fail(resp.StatusCode, resp.Header, body)
}

// jsonInstead checks a 2xx answer that must not be JSON (a stream, audio):
// JSON there is an error the vendor sent with a success status, or an
// unreadable answer. It reads and closes such a body; nil leaves resp as is.
func (c *Client) jsonInstead(resp *http.Response, what string) error {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return nil
	}
	defer resp.Body.Close()
	b, err := provider.ReadBody(resp)
	if err != nil {
		return err
	}
	if e := c.errorIn(resp, b); e != nil {
		return e
	}
	return provider.BadResponse("upstream %s answered %s with JSON", c.Name, what)
}

// prepare applies the preset's quirks to a copy of the request and encodes it.
func (c *Client) prepare(req *llm.ChatRequest, stream bool) ([]byte, error) {
	r := *req
	r.Stream = stream
	if stream {
		// Always ask for usage: metering needs it; the gateway drops it for
		// clients that did not ask.
		r.StreamOptions = &llm.StreamOptions{IncludeUsage: true}
	} else {
		r.StreamOptions = nil
	}
	if r.TopP != nil {
		p := *r.TopP
		if c.Preset.TopPMax > 0 && p > c.Preset.TopPMax {
			p = c.Preset.TopPMax
		}
		if c.Preset.TopPOpen {
			p = min(max(p, 0.0001), 0.9999)
		}
		r.TopP = &p
	}
	if len(c.Preset.DefaultBody) > 0 {
		extra := make(map[string]json.RawMessage, len(r.Extra)+len(c.Preset.DefaultBody))
		for k, v := range r.Extra {
			extra[k] = v
		}
		for k, v := range c.Preset.DefaultBody {
			if _, set := extra[k]; !set {
				extra[k], _ = json.Marshal(v)
			}
		}
		r.Extra = extra
	}
	return json.Marshal(r)
}

func (c *Client) ChatCompletion(ctx context.Context, req *llm.ChatRequest) (_ *llm.ChatResponse, err error) {
	defer provider.Guard(&err, c.APIKey)
	body, err := c.prepare(req, false)
	if err != nil {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Message: "cannot encode request", Err: err}
	}
	resp, err := c.post(ctx, "/chat/completions", body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := provider.ReadBody(resp)
	if err != nil {
		return nil, err
	}
	if e := c.errorIn(resp, b); e != nil {
		return nil, e
	}
	// One decode: the usage is captured raw and normalised apart.
	var wire struct {
		llm.ChatResponse
		RawUsage json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return nil, provider.BadResponse("upstream %s sent unreadable JSON", c.Name).Quote(b)
	}
	out := wire.ChatResponse
	if out.Choices == nil {
		return nil, provider.BadResponse("upstream %s answered without choices", c.Name)
	}
	out.Usage = normalizeUsage(wire.RawUsage)
	if out.Object == "chat.completion" && !c.Preset.ThinkTags && !mayHoldError(b) {
		out.Raw = llm.ConformChatResponse(bytes.TrimSpace(b)) // OpenAI's shape: relay the bytes, spec gaps filled
	}
	if out.Object == "" {
		out.Object = "chat.completion"
	}
	if c.Preset.ThinkTags {
		for i := range out.Choices {
			m := &out.Choices[i].Message
			if m.ReasoningContent == "" && m.Content.Parts == nil {
				m.ReasoningContent, m.Content.Text = splitThink(m.Content.Text)
			}
		}
	}
	return &out, nil
}

// normalizeUsage decodes a usage object, keeps it raw beside the normal
// form, and fills OpenAI's cached-token detail from vendors' own fields
// (DeepSeek's prompt_cache_hit_tokens, Moonshot's top-level cached_tokens).
func normalizeUsage(raw json.RawMessage) *llm.Usage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var u struct {
		llm.Usage
		Hit    *int `json:"prompt_cache_hit_tokens"`
		Cached *int `json:"cached_tokens"`
	}
	if json.Unmarshal(raw, &u) != nil {
		return nil
	}
	out := u.Usage
	out.Raw = raw
	if out.PromptTokensDetails == nil {
		switch {
		case u.Hit != nil:
			out.PromptTokensDetails = &llm.PromptTokensDetails{CachedTokens: *u.Hit}
		case u.Cached != nil:
			out.PromptTokensDetails = &llm.PromptTokensDetails{CachedTokens: *u.Cached}
		}
	}
	if out.TotalTokens == 0 {
		out.TotalTokens = out.PromptTokens + out.CompletionTokens
	}
	return &out
}

// splitThink separates a leading <think>…</think> block from the answer.
func splitThink(s string) (reasoning, content string) {
	t := strings.TrimLeft(s, " \n")
	if !strings.HasPrefix(t, "<think>") {
		return "", s
	}
	inner, rest, found := strings.Cut(t[len("<think>"):], "</think>")
	if !found {
		return "", s
	}
	return strings.TrimSpace(inner), strings.TrimLeft(rest, "\n")
}

func (c *Client) ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (_ provider.ChatStream, err error) {
	defer provider.Guard(&err, c.APIKey)
	body, err := c.prepare(req, true)
	if err != nil {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Message: "cannot encode request", Err: err}
	}
	resp, err := c.post(ctx, "/chat/completions", body)
	if err != nil {
		return nil, err
	}
	// Some vendors answer a stream request with a plain JSON error and status 200.
	if err := c.jsonInstead(resp, "a stream request"); err != nil {
		return nil, err
	}
	return &stream{c: c, body: resp.Body, r: sse.NewReader(resp.Body), header: resp.Header, relay: provider.ByteRelay(ctx)}, nil
}

type stream struct {
	c      *Client
	body   io.ReadCloser
	r      *sse.Reader
	header http.Header
	chunk  llm.ChatChunk
	raw    []byte // reused buffer behind chunk.Raw
	err    error
	done   bool
	// finished counts choices that sent a finish_reason: a stream that ends
	// without [DONE] but finished every choice is complete.
	finished int
	// relay: the caller relays the bytes (provider.WithByteRelay), so a
	// chunk is scanned for what it needs, not decoded; scanned counts them.
	relay   bool
	scanned int
	choices []llm.ChunkChoice // reused by scanned chunks
	strs    [8]string         // their strings (see optString)
	nstrs   int
}

func (s *stream) Next() bool {
	if s.done || s.err != nil {
		return false
	}
	for s.r.Next() {
		ev := s.r.Event()
		data := bytes.TrimSpace(ev.Data)
		if bytes.Equal(data, []byte("[DONE]")) {
			s.done = true
			return false
		}
		if len(data) == 0 {
			continue
		}
		if ev.Name == "error" || bytes.HasPrefix(data, []byte(`{"error"`)) {
			s.err = s.c.fail(http.StatusOK, nil, data)
			return false
		}
		if s.relay && s.scanChunk(data) {
			s.scanned++
			s.countFinished()
			return true
		}
		var wire struct {
			llm.ChatChunk
			RawUsage json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal(data, &wire); err != nil {
			s.err = provider.BadResponse("upstream %s sent a malformed stream event", s.c.Name).Quote(data)
			return false
		}
		s.chunk = wire.ChatChunk
		s.chunk.Usage = normalizeUsage(wire.RawUsage)
		if s.chunk.Choices == nil && s.chunk.Usage == nil {
			if _, _, _, _, isErr := bodyError(data); isErr {
				s.err = s.c.fail(http.StatusOK, nil, data)
				return false
			}
			continue
		}
		s.countFinished()
		if s.chunk.Object == "" {
			s.chunk.Object = "chat.completion.chunk"
		} else if !llm.HasNullMember(data, "system_fingerprint") { // a null one breaks OpenAI's spec: re-encode
			s.chunk.Raw = append(s.raw[:0], data...) // relayed as is
			s.raw = s.chunk.Raw
		}
		return true
	}
	if err := s.r.Err(); err != nil {
		s.err = provider.ClassifyTransport(err)
		if err == sse.ErrLineTooLong {
			s.err = provider.BadResponse("upstream %s sent an oversized stream event", s.c.Name)
		}
		provider.AsError(s.err).Provider = s.c.Name
		return false
	}
	if s.finished == 0 {
		s.err = &provider.Error{Kind: provider.KindUnavailable, Provider: s.c.Name, Message: "upstream stream ended before it finished"}
	}
	return false
}

func (s *stream) countFinished() {
	for _, ch := range s.chunk.Choices {
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finished++
		}
	}
}

// ByteRelayed reports whether chunks were relayed by a scan, undecoded.
func (s *stream) ByteRelayed() bool { return s.scanned > 0 }

func (s *stream) Chunk() *llm.ChatChunk { return &s.chunk }
func (s *stream) Err() error            { return provider.Scrub(s.err, s.c.APIKey) }
func (s *stream) Buffered() bool        { return s.r.Buffered() }

func (s *stream) Close() error {
	if s.done {
		sse.Drain(s.body) // the connection goes back to the pool
	}
	return s.body.Close()
}

func (c *Client) Embeddings(ctx context.Context, req *llm.EmbeddingRequest) (_ *llm.EmbeddingResponse, err error) {
	defer provider.Guard(&err, c.APIKey)
	body, err := json.Marshal(req)
	if err != nil {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Message: "cannot encode request", Err: err}
	}
	var out llm.EmbeddingResponse
	if err := c.callJSON(ctx, "/embeddings", body, &out); err != nil {
		return nil, err
	}
	if out.Data == nil {
		return nil, provider.BadResponse("upstream %s answered without data", c.Name)
	}
	return &out, nil
}

func (c *Client) ImageGeneration(ctx context.Context, req *llm.ImageRequest) (_ *llm.ImageResponse, err error) {
	defer provider.Guard(&err, c.APIKey)
	if !c.Preset.Images {
		return nil, provider.Errorf(provider.KindUnsupported, "unsupported", "provider %s does not generate images", c.Name)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Message: "cannot encode request", Err: err}
	}
	var out llm.ImageResponse
	if err := c.callJSON(ctx, "/images/generations", body, &out); err != nil {
		return nil, err
	}
	if out.Data == nil {
		return nil, provider.BadResponse("upstream %s answered without data", c.Name)
	}
	return &out, nil
}

func (c *Client) callJSON(ctx context.Context, path string, body []byte, out any) error {
	_, err := c.callRaw(ctx, path, body, out)
	return err
}

// callRaw is callJSON that also returns the answer's bytes.
func (c *Client) callRaw(ctx context.Context, path string, body []byte, out any) ([]byte, error) {
	resp, err := c.post(ctx, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := provider.ReadBody(resp)
	if err != nil {
		return nil, err
	}
	if e := c.errorIn(resp, b); e != nil {
		return nil, e
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, provider.BadResponse("upstream %s sent unreadable JSON", c.Name).Quote(b)
	}
	return b, nil
}
