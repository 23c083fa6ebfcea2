package httpapi_test

import (
	"bufio"
	"bytes"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// BenchmarkRelayPaced streams paced answers (first token after 200 ms,
// then one every 20 ms, 50 tokens, as a model streams) straight from the
// upstream and through tidegate, many at once. Each op is one stream; the
// metric that matters is cpu-µs/stream, the whole process's CPU (load,
// upstream and, for the second, gateway) per stream: tidegate's own cost is
// the difference of the pair. For separate processes and the gateway's CPU
// alone, use `tidegate bench --paced`.
//
//	go test -run '^$' -bench RelayPaced -benchtime 400x ./internal/httpapi/
func BenchmarkRelayPaced(b *testing.B) {
	upstream, _ := simServer(&testing.T{}, sim.Model{Name: "m", TTFT: 200 * time.Millisecond, TokensPerSecond: 50, OutputTokens: 50})
	defer upstream.Close()
	srv := newServer(&testing.T{}, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, nil)
	defer srv.Close()
	defer closeUpstreamClients()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	defer client.CloseIdleConnections()
	body := func(model string) []byte {
		return []byte(`{"model":"` + model + `","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me about the tide gate."}]}`)
	}
	run := func(b *testing.B, url string, payload []byte) {
		b.ReportAllocs()
		b.SetParallelism(64) // ~64×GOMAXPROCS streams open at once
		cpu0 := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(payload))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				br := bufio.NewReader(resp.Body)
				chunks, done := 0, false
				for {
					line, err := br.ReadSlice('\n')
					if bytes.HasPrefix(line, []byte("data:")) {
						chunks++
						done = done || bytes.HasPrefix(line, []byte("data: [DONE]"))
					}
					if err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || !done || chunks < 50 {
					b.Errorf("status %d, %d chunks, done %v", resp.StatusCode, chunks, done)
					return
				}
			}
		})
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/stream")
	}
	b.Run("direct", func(b *testing.B) { run(b, upstream.URL, body("m")) })
	b.Run("tidegate", func(b *testing.B) { run(b, srv.URL, body("up/m")) })
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
