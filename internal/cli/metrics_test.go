package cli

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// TestMetricsListener: with observe.metrics.listen the metrics are served
// there, unauthenticated, and not on the API's listener; what a request did
// shows in them.
func TestMetricsListener(t *testing.T) {
	up := simUpstream(t, sim.Model{Name: "m", TTFT: 5 * time.Millisecond, TokensPerSecond: 500, OutputTokens: 16})
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
observe:
  metrics: {listen: "127.0.0.1:0"}
providers:
  - {name: up, type: vllm, base_url: %s/v1, models: [m]}
models:
  - {name: chat, targets: [up/m]}
`, testKey, up.URL))
	var addr string
	waitUntil(t, 5*time.Second, "the metrics listener", func() bool {
		m := regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`).FindStringSubmatch(g.stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	resp := postChat(t, g.URL, `{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tidegate_requests_total{endpoint="/v1/chat/completions",status="2xx",target="up/m"} 1`,
		`tidegate_time_to_first_token_ms_count{target="up/m"} 1`,
		`tidegate_breaker_state{credential="",target="up/m"} 0`,
		`tidegate_verdicts_total{verdict="ok"} 1`,
		"tidegate_streams_in_flight 0",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, g.URL+"/metrics", nil)
	resp, err = http.DefaultClient.Do(authed(req))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the API listener serves /metrics too: %d", resp.StatusCode)
	}
}
