package httpapi_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// relayProbe records, per stream, whether the gateway asked the provider
// for the byte relay and whether the stream took it.
type relayProbe struct {
	provider.Provider
	mu   sync.Mutex
	seen []string
}

func (p *relayProbe) ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (provider.ChatStream, error) {
	s, err := p.Provider.ChatCompletionStream(ctx, req)
	if err != nil {
		return nil, err
	}
	return &probedStream{ChatStream: s, p: p, asked: provider.ByteRelay(ctx)}, nil
}

type probedStream struct {
	provider.ChatStream
	p     *relayProbe
	asked bool
}

func (s *probedStream) Buffered() bool {
	b, ok := s.ChatStream.(provider.BufferedStream)
	return ok && b.Buffered()
}

func (s *probedStream) Close() error {
	relayed := false
	if b, ok := s.ChatStream.(provider.ByteRelayed); ok {
		relayed = b.ByteRelayed()
	}
	s.p.mu.Lock()
	s.p.seen = append(s.p.seen, map[[2]bool]string{{true, true}: "byte relay", {true, false}: "asked, decoded",
		{false, false}: "decoded", {false, true}: "relayed unasked"}[[2]bool{s.asked, relayed}])
	s.p.mu.Unlock()
	return s.ChatStream.Close()
}

// TestByteRelayOnlyForTheSameDialect: an OpenAI client's chat stream from
// an OpenAI-dialect upstream is relayed as the upstream's bytes, scanned;
// the same upstream translated for /v1/messages or /v1/responses is decoded.
func TestByteRelayOnlyForTheSameDialect(t *testing.T) {
	up, _ := simServer(t, sim.Model{Name: "m", OutputTokens: 5})
	probe := &relayProbe{Provider: openAIClient(up.URL)}
	t.Cleanup(closeUpstreamClients)
	srv := newServer(t, map[string]provider.Provider{"up": probe}, nil, nil)

	tests := []struct {
		name, path, body string
		want             string
		last             string // the body's last data payload
	}{
		{"chat", "/v1/chat/completions", `{"model":"up/m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, "byte relay", "[DONE]"},
		{"messages, translated", "/v1/messages", `{"model":"up/m","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, "decoded", `{"type":"message_stop"}`},
		{"responses, translated", "/v1/responses", `{"model":"up/m","stream":true,"store":false,"input":"hi"}`, "decoded", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := srv.post(t, tt.path, tt.body)
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			events := sseEvents(t, resp.Body)
			resp.Body.Close()
			if len(events) == 0 || (tt.last != "" && events[len(events)-1] != tt.last) {
				t.Fatalf("events %q, want them to end with %s", events, tt.last)
			}
			if tt.path == "/v1/chat/completions" && !strings.Contains(strings.Join(events, ""), `"usage":{`) {
				t.Errorf("no usage chunk in %q", events)
			}
			waitFor(t, "the stream to close", func() bool { probe.mu.Lock(); defer probe.mu.Unlock(); return len(probe.seen) > 0 })
			probe.mu.Lock()
			got := probe.seen
			probe.seen = nil
			probe.mu.Unlock()
			if diff := cmp.Diff([]string{tt.want}, got); diff != "" {
				t.Errorf("relay (-want +got):\n%s", diff)
			}
		})
	}
}
