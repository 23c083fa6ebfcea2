package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/provider"
)

// BenchmarkLargeBody measures what one large chat body costs the gateway in
// allocations, as bytes allocated per byte of body (its reading, decoding,
// and re-encoding for an upstream that discards it). The upstream's own
// reading is excluded; the client's body is made once.
func BenchmarkLargeBody(b *testing.B) {
	const size = 8 << 20
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer upstream.Close()
	srv := newServer(&testing.T{}, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, func(s *httpapi.Server) {
		s.BodyLimit = size
	})
	defer srv.Close()
	body := chatBody("up/m", size)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		resp := srv.post(&testing.T{}, "/v1/chat/completions", body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
}
