package sim

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// The capacity model. A model with Capacity > 0 runs at most that many
// sequences at once, like a continuous-batching server (vLLM, SGLang): a
// sequence holds its slot from prefill (its TTFT) to its last token, and
// the requests beyond it wait in a queue served by priority, lower first,
// then by arrival (vLLM's priority scheduling; plain FCFS when every
// request has the same priority). Decode slows as the running batch grows:
//
//	tokens/s per sequence = tokens_per_second / (1 + decode_slowdown × (running − 1) / capacity)
//
// so a lone sequence decodes at tokens_per_second and a full batch at
// 1/(1 + decode_slowdown × (capacity−1)/capacity) of it (2/3 with the
// default decode_slowdown of 0.5). Without a capacity every call is served
// at once, as before; the counts are kept either way, for /metrics.

// defaultDecodeSlowdown is decode_slowdown when a capacity is set and it is not.
const defaultDecodeSlowdown = 0.5

// batch is one model's running sequences and waiting queue.
type batch struct {
	mu        sync.Mutex
	running   int
	waiting   waitQueue
	arrivals  uint64
	generated int64 // output tokens produced, for vllm:generation_tokens_total
	prompt    int64 // prompt tokens admitted, for vllm:prompt_tokens_total
	// busy is the sequence-seconds the running slots have been held until
	// busyAt: the model's own accounting of its use (utilization over a
	// span is the busy time it gained over capacity × the span).
	busy   time.Duration
	busyAt time.Time
}

// account adds the running slots' time since the last change; b.mu held.
func (b *batch) account(now time.Time) {
	if !b.busyAt.IsZero() {
		b.busy += time.Duration(b.running) * now.Sub(b.busyAt)
	}
	b.busyAt = now
}

type waiter struct {
	priority int
	arrival  uint64
	index    int // in the heap; -1 once admitted or gone
	ready    chan struct{}
}

// waitQueue is a heap of waiters: lowest priority value, then earliest arrival.
type waitQueue []*waiter

func (q waitQueue) Len() int { return len(q) }
func (q waitQueue) Less(i, j int) bool {
	if q[i].priority != q[j].priority {
		return q[i].priority < q[j].priority
	}
	return q[i].arrival < q[j].arrival
}
func (q waitQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i]; q[i].index = i; q[j].index = j }
func (q *waitQueue) Push(x any)   { w := x.(*waiter); w.index = len(*q); *q = append(*q, w) }
func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	*q = old[:len(old)-1]
	w.index = -1
	return w
}

// batchOf is the model's batch, made on first use.
func (f *Fleet) batchOf(name string) *batch {
	f.bmu.Lock()
	defer f.bmu.Unlock()
	b := f.batches[name]
	if b == nil {
		b = &batch{}
		f.batches[name] = b
	}
	return b
}

// admit takes a running slot for one sequence of m, waiting in the queue
// while the model is at capacity; release gives it back (once). It fails
// only when ctx ends while waiting.
func (f *Fleet) admit(ctx context.Context, m Model, priority, promptTokens int) (release func(), err error) {
	b := f.batchOf(m.Name)
	b.mu.Lock()
	b.prompt += int64(promptTokens)
	if m.Capacity <= 0 || (b.running < m.Capacity && b.waiting.Len() == 0) {
		b.account(time.Now())
		b.running++
		b.mu.Unlock()
		return f.releaser(m.Name, b), nil
	}
	b.arrivals++
	w := &waiter{priority: priority, arrival: b.arrivals, ready: make(chan struct{})}
	heap.Push(&b.waiting, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return f.releaser(m.Name, b), nil
	case <-ctx.Done():
		b.mu.Lock()
		if w.index >= 0 {
			heap.Remove(&b.waiting, w.index)
			b.mu.Unlock()
			return nil, provider.ClassifyTransport(ctx.Err())
		}
		b.mu.Unlock()
		// Admitted as ctx ended: hand the slot on.
		f.releaser(m.Name, b)()
		return nil, provider.ClassifyTransport(ctx.Err())
	}
}

func (f *Fleet) releaser(name string, b *batch) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			capacity := 0
			if m, err := f.model(name); err == nil {
				capacity = m.Capacity
			}
			b.mu.Lock()
			b.account(time.Now())
			b.running--
			for b.waiting.Len() > 0 && (capacity <= 0 || b.running < capacity) {
				w := heap.Pop(&b.waiting).(*waiter)
				b.running++
				close(w.ready)
			}
			b.mu.Unlock()
		})
	}
}

// produced counts output tokens, for the metrics.
func (f *Fleet) produced(name string, n int) {
	b := f.batchOf(name)
	b.mu.Lock()
	b.generated += int64(n)
	b.mu.Unlock()
}

// decodeInterval is the pause between two output pieces of m now: the
// model's pace, slowed by the running batch (see the formula above).
func (f *Fleet) decodeInterval(m Model) time.Duration {
	base := m.tokenInterval()
	if base == 0 || m.Capacity <= 0 {
		return base
	}
	b := f.batchOf(m.Name)
	b.mu.Lock()
	running := b.running
	b.mu.Unlock()
	slow := m.DecodeSlowdown
	if slow == 0 {
		slow = defaultDecodeSlowdown
	}
	return time.Duration(float64(base) * (1 + slow*float64(max(running-1, 0))/float64(m.Capacity)))
}

// Load is a model's state now, as a server's metrics report it.
type Load struct {
	Running, Waiting int
	// KVCache is the share of the model's capacity in use, 0–1 (0 without a capacity).
	KVCache                 float64
	Generated, PromptTokens int64
	// SequenceSeconds is the time the model's running slots have been
	// held since it started (the integral of Running).
	SequenceSeconds float64
}

// Load reports the named model's running and waiting sequences.
func (f *Fleet) Load(name string) Load {
	m, _ := f.model(name)
	b := f.batchOf(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.account(time.Now())
	l := Load{Running: b.running, Waiting: b.waiting.Len(), Generated: b.generated, PromptTokens: b.prompt,
		SequenceSeconds: b.busy.Seconds()}
	if m.Capacity > 0 {
		l.KVCache = min(float64(b.running)/float64(m.Capacity), 1)
	}
	return l
}

// requestPriority reads vLLM's priority field (lower is served first;
// absent or unreadable: 0).
func requestPriority(req *llm.ChatRequest) int {
	var p int
	if raw, ok := req.Extra["priority"]; ok && json.Unmarshal(raw, &p) == nil {
		return p
	}
	return 0
}

// serveMetrics writes the fleet's load in vLLM's metric names (Prometheus
// text), one series per model: what tidegate's load scraper reads.
func (f *Fleet) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	names := f.Models()
	slices.Sort(names)
	loads := make([]Load, len(names))
	for i, n := range names {
		loads[i] = f.Load(n)
	}
	family := func(name, typ, help string, value func(Load) string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for i, n := range names {
			fmt.Fprintf(w, "%s{model_name=%q} %s\n", name, n, value(loads[i]))
		}
	}
	num := func(v int) string { return fmt.Sprint(v) }
	family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", func(l Load) string { return num(l.Running) })
	family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", func(l Load) string { return num(l.Waiting) })
	family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", func(l Load) string { return fmt.Sprint(l.KVCache) })
	family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", func(l Load) string { return fmt.Sprint(l.Generated) })
	family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", func(l Load) string { return fmt.Sprint(l.PromptTokens) })
	// Not vLLM's: the sim's own accounting of its slots' use, for the tide drill.
	family("sim:sequence_seconds_total", "counter", "Sequence-seconds the running slots were held.", func(l Load) string { return fmt.Sprint(l.SequenceSeconds) })
}
