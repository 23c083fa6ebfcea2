package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// BenchmarkRelay measures the relay path on loopback: the same call straight
// to an upstream and through tidegate, in one run. Compare the pairs as a
// ratio; absolute figures depend on the machine.
func BenchmarkRelay(b *testing.B) {
	upstream, _ := simServer(&testing.T{}, sim.Model{Name: "m", OutputTokens: 16})
	defer upstream.Close()
	srv := newServer(&testing.T{}, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, nil)
	defer srv.Close()
	defer closeUpstreamClients()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	body := func(model string, stream bool) []byte {
		if stream {
			return []byte(`{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"Tell me about the tide gate."}]}`)
		}
		return []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Tell me about the tide gate."}]}`)
	}
	run := func(b *testing.B, url string, payload []byte, stream bool) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(payload))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || (stream && !strings.Contains(string(got), "[DONE]")) {
					b.Errorf("status %d: %.200s", resp.StatusCode, got)
					return
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, upstream.URL, body("m", false), false) })
	b.Run("tidegate", func(b *testing.B) { run(b, srv.URL, body("up/m", false), false) })
	b.Run("direct-stream", func(b *testing.B) { run(b, upstream.URL, body("m", true), true) })
	b.Run("tidegate-stream", func(b *testing.B) { run(b, srv.URL, body("up/m", true), true) })
}
