package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// poolShot is one streamed request's fate, as its client saw it.
type poolShot struct {
	ttft  time.Duration // to the first content; the cap when none came by then
	route string
	id    string
	err   string
}

// drivePool sends streamed chats for model at a steady rate (open loop:
// arrivals do not wait for answers) for dur, and reads each to its end so
// the answer holds its server slot as a real client would. A first token
// later than firstTokenCap is counted as firstTokenCap and the request
// dropped, which bounds the test's time.
func drivePool(t *testing.T, g *gatewayProc, model string, rate float64, dur, firstTokenCap time.Duration) []poolShot {
	t.Helper()
	n := int(rate * dur.Seconds())
	shots := make([]poolShot, n)
	every := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var wg sync.WaitGroup
	body := fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"hello"}]}`, model)
	for i := range n {
		if i > 0 {
			<-tick.C
		}
		wg.Go(func() { shots[i] = shoot(g.URL, body, firstTokenCap) })
	}
	wg.Wait()
	for _, s := range shots {
		if s.err != "" {
			t.Fatalf("%s: a request failed: %s", model, s.err)
		}
	}
	return shots
}

func shoot(url, body string, firstTokenCap time.Duration) poolShot {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	late := time.AfterFunc(firstTokenCap, cancel)
	defer late.Stop()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return poolShot{ttft: firstTokenCap}
		}
		return poolShot{err: err.Error()}
	}
	defer resp.Body.Close()
	s := poolShot{route: resp.Header.Get("x-tidegate-route"), id: resp.Header.Get("x-tidegate-request-id")}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return poolShot{err: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, b)}
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			s.ttft = time.Since(sent)
			break
		}
	}
	if s.ttft == 0 {
		if ctx.Err() != nil {
			return poolShot{ttft: firstTokenCap}
		}
		return poolShot{err: fmt.Sprintf("no content (%v)", sc.Err())}
	}
	late.Stop()
	_, _ = io.Copy(io.Discard, resp.Body) // hold the server's slot to the last token
	return s
}

// p99 is the shots' 99th percentile time to first token; with routes
// given, of the shots those routes answered (or none did, when "").
func p99(shots []poolShot, routes ...string) time.Duration {
	var ds []time.Duration
	for _, s := range shots {
		if len(routes) == 0 || slices.Contains(routes, s.route) {
			ds = append(ds, s.ttft)
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[(len(ds)*99+99)/100-1]
}

func share(shots []poolShot, route string) float64 {
	n := 0
	for _, s := range shots {
		if s.route == route {
			n++
		}
	}
	return float64(n) / float64(len(shots))
}

// TestBalanceByLoad is the pool's acceptance: two self-hosted targets
// (sims over HTTP serving vLLM's metric names), a cheap slow one that runs
// 4 sequences at once and a dear fast one. With load low, the cheap one
// carries the traffic. Under a steady load the cheap one alone cannot
// carry (about 1.7× its capacity), balance: load keeps p99 time to first
// token within the SLO by spilling to the dear one, while a route in
// configured order queues on the cheap one far past it. Both policies run
// at once, each on its own pair of servers, so the machine's noise falls
// on both alike.
func TestBalanceByLoad(t *testing.T) {
	const slo = time.Second
	// About 0.5 s a sequence (100 ms to the first token, 7 more at 25/s,
	// slowed by the batch): the cheap one serves about 8 requests/s.
	cheap := sim.Model{Name: "q", Capacity: 4, TTFT: 100 * time.Millisecond, TokensPerSecond: 25, OutputTokens: 8}
	dear := sim.Model{Name: "q", Capacity: 32, TTFT: 50 * time.Millisecond, TokensPerSecond: 200, OutputTokens: 8}
	up := map[string]string{}
	for _, name := range []string{"cheap-a", "dear-a", "cheap-b", "dear-b"} {
		m := cheap
		if strings.HasPrefix(name, "dear") {
			m = dear
		}
		up[name] = simUpstream(t, m).URL
	}
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
providers:
  - {name: cheap-a, type: vllm, base_url: %s/v1, models: [q], accelerator: l4, cost_per_hour: {amount: 1, currency: CNY}}
  - {name: dear-a, type: vllm, base_url: %s/v1, models: [q], accelerator: h100, cost_per_hour: {amount: 100, currency: CNY}}
  - {name: cheap-b, type: vllm, base_url: %s/v1, models: [q], accelerator: l4, cost_per_hour: {amount: 1, currency: CNY}, scheduling: priority}
  - {name: dear-b, type: vllm, base_url: %s/v1, models: [q], accelerator: h100, cost_per_hour: {amount: 100, currency: CNY}}
models:
  - {name: listed, targets: [cheap-a/q, dear-a/q]}
  - {name: pool, balance: load, ttft_slo: %s, targets: [cheap-b/q, dear-b/q]}
`, testKey, up["cheap-a"], up["dear-a"], up["cheap-b"], up["dear-b"], slo))

	// Load low: the cheaper target carries the traffic.
	low := drivePool(t, g, "pool", 4, 2*time.Second, 3*time.Second)
	if s := share(low, "cheap-b/q"); s < 0.8 {
		t.Errorf("at low load the cheap target carried %.0f%% of the traffic, want at least 80%%", 100*s)
	}

	// Load the cheap target alone cannot carry, on both routes at once.
	var pooled, listed []poolShot
	var wg sync.WaitGroup
	wg.Go(func() { pooled = drivePool(t, g, "pool", 14, 3*time.Second, 3*time.Second) })
	wg.Go(func() { listed = drivePool(t, g, "listed", 14, 3*time.Second, 3*time.Second) })
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("p99 TTFT: balance: load %v (cheap %.0f%% at %v, dear %.0f%% at %v); configured order %v (cheap %.0f%% at %v, none %.0f%%)",
		p99(pooled), 100*share(pooled, "cheap-b/q"), p99(pooled, "cheap-b/q"), 100*share(pooled, "dear-b/q"), p99(pooled, "dear-b/q"),
		p99(listed), 100*share(listed, "cheap-a/q"), p99(listed, "cheap-a/q"), 100*share(listed, ""))
	// A busy machine delays every answer alike: the dear target, never
	// queued, shows by how much (its p99 over its configured first token),
	// and that stall is not the policy's.
	stall := max(p99(pooled, "dear-b/q")-dear.TTFT, 0)
	if got := p99(pooled); got > slo+stall {
		t.Errorf("balance: load: p99 time to first token %v, over the %v SLO (+ the machine's stall %v)", got, slo, stall)
	}
	if got := p99(listed); got < 3*slo/2 {
		t.Errorf("configured order: p99 time to first token %v, want the cheap target's queue to push it past 1.5 × %v", got, slo)
	}
	if s := share(pooled, "cheap-b/q"); s < 0.3 || s > 0.9 {
		t.Errorf("balance: load sent %.0f%% to the cheap target under load, want it kept busy (≥ 30%%) and the rest spilled", 100*s)
	}

	// The choice and its reason are in the request record.
	var rec map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && rec == nil; time.Sleep(20 * time.Millisecond) {
		if status, out := admin(t, g, http.MethodGet, "/admin/requests/"+pooled[len(pooled)-1].id, ""); status == http.StatusOK {
			rec = out
		}
	}
	if why, _ := rec["route_reason"].(string); !strings.HasPrefix(why, "balance: load: ") {
		t.Errorf("request record's route_reason = %q", why)
	}

	// Status and metrics show each target's load, cost and share.
	status, rep := admin(t, g, http.MethodGet, "/admin/status", "")
	pool, _ := rep["pool"].([]any)
	if status != http.StatusOK || len(pool) != 4 {
		t.Fatalf("status %d, pool %v", status, rep["pool"])
	}
	for _, p := range pool {
		p := p.(map[string]any)
		if p["fresh"] != true || p["cost_per_hour_cny"] == nil || p["share"] == nil {
			t.Errorf("status pool entry %v", p)
		}
	}
	resp := sendJSON(t, http.MethodGet, g.URL+"/metrics", testKey, "")
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`tidegate_target_queue{target="cheap-a/q"}`, `tidegate_target_kv_cache_usage{target="cheap-b/q"}`,
		`tidegate_target_utilization{target="dear-b/q"}`, `tidegate_target_output_tokens_total{class="online",target="cheap-b/q"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
