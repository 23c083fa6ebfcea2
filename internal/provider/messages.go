package provider

import (
	"context"
	"net/http"

	"github.com/tidegate/tidegate/internal/llm"
)

// MessagesPassthrough is implemented by providers that speak Anthropic's
// Messages API natively: a /v1/messages body goes to them as the client
// wrote it (only the model and the credential change) and the answer comes
// back as they sent it, so nothing a translation cannot carry is lost
// (cache_control, thinking signatures, documents, …).
type MessagesPassthrough interface {
	// Messages sends a non-streaming body; the answer's bytes are relayed.
	Messages(ctx context.Context, req *NativeRequest) (*RawAnswer, error)
	// MessagesStream sends a body with "stream": true; an error here means
	// no event was produced.
	MessagesStream(ctx context.Context, req *NativeRequest) (EventStream, error)
	// CountTokens asks the provider to count a body's input tokens.
	CountTokens(ctx context.Context, req *NativeRequest) (*RawAnswer, error)
}

// NativeRequest is a client's body for the provider's own API.
type NativeRequest struct {
	Body []byte
	// Header holds the client's protocol headers the provider honours
	// (anthropic-version, anthropic-beta); never credentials.
	Header http.Header
}

// RawAnswer is an upstream's whole answer, relayed as it came.
type RawAnswer struct {
	Body []byte
	// Usage is the answer's usage in the normal form, for billing; nil when none.
	Usage *llm.Usage
	// Output is the answer's generated text, for the request record.
	Output string
}

// EventStream is a native stream pulled like ChatStream: Next until false,
// then Err; Close always.
type EventStream interface {
	Next() bool
	Event() Event
	// Usage is the usage reported so far, nil before any.
	Usage() *llm.Usage
	Err() error
	Close() error
}

// Event is one server-sent event as the upstream sent it.
type Event struct {
	Name string
	Data []byte // valid until the next call to Next
	// Text is the output it carries (text, thinking, tool input), for
	// estimates and the request record.
	Text string
	// Commits is set on events that carry output or end the answer: the
	// first of them is the commit point, before which another target may
	// still take over.
	Commits bool
}
