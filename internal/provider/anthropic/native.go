package anthropic

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/sse"
)

// The client is a provider.MessagesPassthrough: /v1/messages bodies go to
// Anthropic as the client wrote them.
var _ provider.MessagesPassthrough = (*Client)(nil)

// ForwardedHeaders are the client headers a native call carries: they
// choose the API's version and beta features, never where the call goes.
var ForwardedHeaders = []string{"anthropic-version", "anthropic-beta"}

func (c *Client) endpoint(path string) string {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + path
}

// native posts a client's body to path with tidegate's credential.
func (c *Client) native(ctx context.Context, path string, req *provider.NativeRequest) (*http.Response, error) {
	h := make(http.Header, 4)
	h.Set("anthropic-version", Version)
	for _, k := range ForwardedHeaders {
		if v := req.Header.Values(k); len(v) > 0 {
			h[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
		}
	}
	h.Set("x-api-key", c.APIKey)
	return provider.Call(ctx, c.HTTP, c.Name, c.endpoint(path), h, req.Body, c.fail)
}

// Messages relays a whole answer, reading its usage for billing.
func (c *Client) Messages(ctx context.Context, req *provider.NativeRequest) (_ *provider.RawAnswer, err error) {
	defer provider.Guard(&err, c.APIKey)
	b, status, h, err := c.whole(ctx, "/v1/messages", req)
	if err != nil {
		return nil, err
	}
	var mr MessagesResponse
	if err := json.Unmarshal(b, &mr); err != nil || mr.Type != "message" {
		if mr.Type == "error" {
			return nil, c.fail(status, h, b)
		}
		return nil, provider.BadResponse("upstream %s sent an unreadable answer", c.Name).Quote(b)
	}
	var out strings.Builder
	for _, bl := range mr.Content {
		out.WriteString(bl.Thinking)
		out.WriteString(bl.Text)
		out.Write(bl.Input)
	}
	u := ChatUsage(mr.Usage)
	u.Raw = rawUsage(b)
	return &provider.RawAnswer{Body: b, Usage: u, Output: out.String()}, nil
}

// CountTokens relays Anthropic's count of a body's input tokens.
func (c *Client) CountTokens(ctx context.Context, req *provider.NativeRequest) (_ *provider.RawAnswer, err error) {
	defer provider.Guard(&err, c.APIKey)
	b, _, _, err := c.whole(ctx, "/v1/messages/count_tokens", req)
	if err != nil {
		return nil, err
	}
	var n struct {
		InputTokens *int `json:"input_tokens"`
	}
	if json.Unmarshal(b, &n) != nil || n.InputTokens == nil || *n.InputTokens < 0 {
		return nil, provider.BadResponse("upstream %s sent an unreadable token count", c.Name).Quote(b)
	}
	return &provider.RawAnswer{Body: b}, nil
}

func (c *Client) whole(ctx context.Context, path string, req *provider.NativeRequest) ([]byte, int, http.Header, error) {
	resp, err := c.native(ctx, path, req)
	if err != nil {
		return nil, 0, nil, err
	}
	defer resp.Body.Close()
	b, err := provider.ReadBody(resp)
	return b, resp.StatusCode, resp.Header, err
}

// MessagesStream opens a native stream; its events are relayed as they come.
func (c *Client) MessagesStream(ctx context.Context, req *provider.NativeRequest) (_ provider.EventStream, err error) {
	defer provider.Guard(&err, c.APIKey)
	resp, err := c.native(ctx, "/v1/messages", req)
	if err != nil {
		return nil, err
	}
	return &eventStream{c: c, body: resp.Body, r: sse.NewReader(resp.Body)}, nil
}

// eventStream reads Anthropic's events, keeping the usage for billing and
// marking the events that carry output; an error event ends it in Err.
type eventStream struct {
	c    *Client
	body io.ReadCloser
	r    *sse.Reader

	usage Usage
	raw   json.RawMessage
	seen  bool // usage was reported
	cur   provider.Event
	err   error
	done  bool // message_stop came
	// scanned counts content_block_delta events read by a scan, undecoded.
	scanned int
}

// scanDelta reads a content_block_delta event's output by a scan; false
// for any other event, which is decoded whole.
func scanDelta(data []byte) (string, bool) {
	isDelta, text := false, ""
	ok := llm.Members(data, func(key, v []byte) bool {
		switch string(key) {
		case "type":
			isDelta = string(v) == `"content_block_delta"`
			return isDelta
		case "delta":
			return llm.Members(v, func(key, v []byte) bool {
				switch string(key) {
				case "text", "thinking", "partial_json":
					s, isStr := llm.RawString(v)
					text += s
					return isStr
				}
				return true
			})
		}
		return true
	})
	return text, ok && isDelta
}

// ByteRelayed reports whether events were read by a scan, undecoded.
func (s *eventStream) ByteRelayed() bool { return s.scanned > 0 }

func (s *eventStream) Next() bool {
	if s.err != nil || s.done {
		return false
	}
	if !s.r.Next() {
		if err := s.r.Err(); err != nil {
			e := provider.ClassifyTransport(err)
			e.Provider = s.c.Name
			s.err = e
		} else {
			s.err = &provider.Error{Kind: provider.KindUnavailable, Provider: s.c.Name, Message: "upstream stream ended before message_stop"}
		}
		return false
	}
	ev := s.r.Event()
	if text, ok := scanDelta(ev.Data); ok { // the bulk of a stream, read by a scan
		s.scanned++
		s.cur = provider.Event{Name: ev.Name, Data: ev.Data, Commits: true, Text: text}
		if s.cur.Name == "" {
			s.cur.Name = "content_block_delta"
		}
		return true
	}
	var e streamEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		s.err = provider.BadResponse("upstream %s sent a malformed stream event", s.c.Name).Quote(ev.Data)
		return false
	}
	out := provider.Event{Name: ev.Name, Data: ev.Data}
	if out.Name == "" {
		out.Name = e.Type
	}
	switch e.Type {
	case "message_start":
		if e.Message != nil {
			s.usage, s.seen = e.Message.Usage, true
			s.raw = rawUsage(mustRaw(ev.Data, "message"))
		}
	case "content_block_delta":
		out.Commits = true
		if d := e.Delta; d != nil {
			out.Text = d.Text + d.Thinking + d.PartialJSON
		}
	case "message_delta":
		out.Commits = true
		if e.Usage != nil {
			mergeUsage(&s.usage, e.Usage)
			s.raw, s.seen = rawUsage(ev.Data), true
		}
	case "message_stop":
		out.Commits, s.done = true, true
	case "error":
		body, _ := json.Marshal(ErrorResponse{Type: "error", Error: *orEmpty(e.Error)})
		s.err = s.c.fail(http.StatusOK, nil, body)
		return false
	}
	s.cur = out
	return true
}

// mustRaw returns a member of a JSON object, nil when absent.
func mustRaw(data []byte, member string) []byte {
	var v map[string]json.RawMessage
	_ = json.Unmarshal(data, &v)
	return v[member]
}

// mergeUsage folds a message_delta's usage in: output_tokens is
// cumulative, and newer servers repeat the input side too.
func mergeUsage(u *Usage, d *Usage) {
	u.OutputTokens = d.OutputTokens
	if d.InputTokens > 0 {
		u.InputTokens = d.InputTokens
	}
	if d.CacheReadInputTokens > 0 {
		u.CacheReadInputTokens = d.CacheReadInputTokens
	}
	if d.CacheCreationInputTokens > 0 {
		u.CacheCreationInputTokens = d.CacheCreationInputTokens
	}
}

func (s *eventStream) Event() provider.Event { return s.cur }

func (s *eventStream) Usage() *llm.Usage {
	if !s.seen {
		return nil
	}
	u := ChatUsage(s.usage)
	u.Raw = s.raw
	return u
}

func (s *eventStream) Err() error     { return provider.Scrub(s.err, s.c.APIKey) }
func (s *eventStream) Buffered() bool { return s.r.Buffered() }

func (s *eventStream) Close() error {
	if s.done {
		sse.Drain(s.body) // the connection goes back to the pool
	}
	return s.body.Close()
}
