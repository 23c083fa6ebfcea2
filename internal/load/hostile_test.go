package load

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// vllmBody is a vLLM /metrics answer for model m; each value is as served.
func vllmBody(running, waiting, kv, generated string) string {
	return strings.Join([]string{
		"# TYPE vllm:num_requests_running gauge", `vllm:num_requests_running{model_name="m"} ` + running,
		"# TYPE vllm:num_requests_waiting gauge", `vllm:num_requests_waiting{model_name="m"} ` + waiting,
		"# TYPE vllm:kv_cache_usage_perc gauge", `vllm:kv_cache_usage_perc{model_name="m"} ` + kv,
		"# TYPE vllm:generation_tokens_total counter", `vllm:generation_tokens_total{model_name="m"} ` + generated, ""}, "\n")
}

// TestHostileReadings: a server that runs 4 and queues 1 at half its KV
// cache, producing 100 tokens/s (200 at a full batch: 50 CNY per 1M tokens
// at 36 CNY/hour), serves one reading that no server could (NaN, +Inf, -1,
// 1e30) in one signal, over HTTP. The snapshot taken then stays in range,
// and afterwards the learned capacity, forecast and cost are those of the
// good readings alone; the reading is logged once.
func TestHostileReadings(t *testing.T) {
	for _, field := range []string{"running", "waiting", "kv", "generated"} {
		for _, bad := range []string{"NaN", "+Inf", "-1", "1e30"} {
			t.Run(field+"="+bad, func(t *testing.T) {
				var mu sync.Mutex
				var body string
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					mu.Lock()
					defer mu.Unlock()
					fmt.Fprint(w, body)
				}))
				defer srv.Close()
				logs := &records{}
				tr := New(Config{Servers: []Server{{Name: "gpu", Kind: VLLM, URL: srv.URL, CostPerHour: 36, Models: []string{"m"}}},
					Logger: slog.New(logs)})
				now := time.Unix(1000, 0)
				tr.now = func() time.Time { return now }
				generated := 1000
				scrape := func(hostile bool) {
					v := []string{"4", "1", "0.5", fmt.Sprint(generated)}
					if hostile {
						v[map[string]int{"running": 0, "waiting": 1, "kv": 2, "generated": 3}[field]] = bad
					}
					mu.Lock()
					body = vllmBody(v[0], v[1], v[2], v[3])
					mu.Unlock()
					tr.Scrape(context.Background())
					now = now.Add(time.Second)
					generated += 100
				}
				for range throughputWindow + 1 {
					scrape(false)
				}
				scrape(true)
				l := tr.Snapshot(m)
				if l.Running < 0 || l.Running > maxCount || l.Waiting < 0 || l.Waiting > maxCount ||
					!(l.KVCache == -1 || l.KVCache >= 0 && l.KVCache <= 1) || l.Capacity < 0 || l.Capacity > maxCount || l.Others < 0 {
					t.Errorf("snapshot of the hostile reading out of range: %+v", l)
				}
				if f := tr.Forecast(m); f.TTFT < 0 || f.TTFT > maxWait || !(f.CostPerMTokens >= 0) {
					t.Errorf("forecast on the hostile reading: %+v", f)
				}
				for range 2*throughputWindow + 2 {
					scrape(false)
				}
				if c := tr.Snapshot(m).Capacity; c != 4 {
					t.Errorf("capacity %d after, want 4", c)
				}
				// 4 running + 1 waiting + this one over 4 slots: second in
				// line, 1 s a call (none answered yet) over 4 slots.
				f := tr.Forecast(m)
				if f.TTFT != 500*time.Millisecond {
					t.Errorf("TTFT %v after, want 500ms", f.TTFT)
				}
				if f.CostPerMTokens < 45 || f.CostPerMTokens > 55 {
					t.Errorf("cost per 1M tokens %v after, want 50", f.CostPerMTokens)
				}
				logs.mu.Lock()
				n := 0
				for _, msg := range logs.msg {
					if strings.Contains(msg, "dropping readings") {
						n++
					}
				}
				logs.mu.Unlock()
				if n != 1 {
					t.Errorf("logged %d times, want once", n)
				}
			})
		}
	}
}
