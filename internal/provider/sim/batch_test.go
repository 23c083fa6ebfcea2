package sim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
)

func chatWithPriority(priority int) *llm.ChatRequest {
	req := &llm.ChatRequest{Model: "m", Stream: true, Messages: []llm.Message{{Role: "user", Content: llm.TextContent("hi")}}}
	req.Extra = map[string]json.RawMessage{"priority": json.RawMessage(strconv.Itoa(priority))}
	return req
}

// waitFor polls the fleet's own state (the signal) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCapacityQueueByPriority: at capacity, requests wait; a freed slot
// goes to the lowest priority value first, whatever the arrival order; the
// metrics report the running batch, the queue and the KV-cache share in
// vLLM's names.
func TestCapacityQueueByPriority(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", Capacity: 1, OutputTokens: 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := f.ChatCompletionStream(ctx, chatWithPriority(0))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan int, 2)
	for i, prio := range []int{5, 0} {
		go func() {
			s, err := f.ChatCompletionStream(ctx, chatWithPriority(prio))
			if err != nil {
				served <- -1
				return
			}
			served <- prio
			s.Close()
		}()
		waitFor(t, "a queued request", func() bool { return f.Load("m").Waiting == i+1 })
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`vllm:num_requests_running{model_name="m"} 1`, `vllm:num_requests_waiting{model_name="m"} 2`, `vllm:kv_cache_usage_perc{model_name="m"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	first.Close()
	got := []int{<-served, <-served}
	if d := cmp.Diff([]int{0, 5}, got); d != "" {
		t.Errorf("served order (-want +got):\n%s", d)
	}
	if l := f.Load("m"); l.Running != 0 || l.Waiting != 0 {
		t.Errorf("after all ended: %+v", l)
	}
}

// TestQueuedRequestGivesUp: a request cancelled while queued leaves the
// queue and never takes a slot.
func TestQueuedRequestGivesUp(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", Capacity: 1, OutputTokens: 2}})
	first, err := f.ChatCompletionStream(context.Background(), chatWithPriority(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := f.ChatCompletion(ctx, chatWithPriority(0)); done <- err }()
	waitFor(t, "a queued request", func() bool { return f.Load("m").Waiting == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled queued request succeeded")
	}
	first.Close()
	if l := f.Load("m"); l.Running != 0 || l.Waiting != 0 {
		t.Errorf("after cancel: %+v", l)
	}
}

// TestDecodeSlowsWithTheBatch follows the documented formula.
func TestDecodeSlowsWithTheBatch(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", Capacity: 4, TokensPerSecond: 100, OutputTokens: 2}})
	m, _ := f.model("m")
	var held []func()
	tests := []struct {
		running int
		want    time.Duration
	}{
		{1, 10 * time.Millisecond},
		{3, 12500 * time.Microsecond}, // 10ms × (1 + 0.5×2/4)
		{4, 13750 * time.Microsecond},
	}
	for _, tt := range tests {
		for len(held) < tt.running {
			rel, err := f.admit(context.Background(), m, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, rel)
		}
		if got := f.decodeInterval(m); got != tt.want {
			t.Errorf("running %d: interval %v, want %v", tt.running, got, tt.want)
		}
	}
	for _, rel := range held {
		rel()
	}
}

// TestSequenceSeconds: the fleet's own accounting of its slots' use (the
// tide drill's utilization) is the time each call held a slot: no less
// than the modeled prefill and decode of each, no more than the calls took.
func TestSequenceSeconds(t *testing.T) {
	m := Model{Name: "m", Capacity: 4, TTFT: 50 * time.Millisecond, TokensPerSecond: 100, OutputTokens: 5}
	f := New("t", 1, []Model{m})
	took := make(chan time.Duration, 3)
	for range 3 {
		go func() {
			start := time.Now()
			req := chatWithPriority(0)
			req.Stream = false
			if _, err := f.ChatCompletion(context.Background(), req); err != nil {
				t.Error(err)
			}
			took <- time.Since(start)
		}()
	}
	var total time.Duration
	for range 3 {
		total += <-took
	}
	got := time.Duration(f.Load("m").SequenceSeconds * float64(time.Second))
	// Each call: 50 ms to its first token, 5 tokens at 100/s at least.
	if least := 3 * 100 * time.Millisecond; got < least || got > total {
		t.Errorf("sequence-seconds %v, want between %v (modeled) and %v (the calls' own time)", got, least, total)
	}
}
