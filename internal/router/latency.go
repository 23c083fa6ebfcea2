package router

import (
	"sort"
	"sync"
	"time"
)

// Learned is what the gateway learns of each target's speed.
type Learned struct {
	TTFT    *Latencies // time to first token of streams
	Answers *Latencies // time to a whole non-streamed chat answer
}

// NewLearned makes empty latency records.
func NewLearned() *Learned { return &Learned{TTFT: &Latencies{}, Answers: &Latencies{}} }

// Latencies learns each target's latency from its recent calls. A nil
// *Latencies learns nothing and knows nothing.
type Latencies struct {
	mu      sync.Mutex
	samples map[Target]*latencyRing
}

type latencyRing struct {
	d [128]time.Duration
	n int // samples so far (the ring holds the last 128)
}

// Observe records one call's latency.
func (l *Latencies) Observe(t Target, d time.Duration) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.samples == nil {
		l.samples = map[Target]*latencyRing{}
	}
	r := l.samples[t]
	if r == nil {
		r = &latencyRing{}
		l.samples[t] = r
	}
	r.d[r.n%len(r.d)] = d
	r.n++
}

// P95 is a target's learned 95th percentile, false until it has 20 samples.
func (l *Latencies) P95(t Target) (time.Duration, bool) { return l.quantile(t, 95) }

// P50 is a target's learned median, false until it has 20 samples.
func (l *Latencies) P50(t Target) (time.Duration, bool) { return l.quantile(t, 50) }

func (l *Latencies) quantile(t Target, pct int) (time.Duration, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	r := l.samples[t]
	if r == nil || r.n < 20 {
		l.mu.Unlock()
		return 0, false
	}
	s := append([]time.Duration(nil), r.d[:min(r.n, len(r.d))]...)
	l.mu.Unlock()
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*pct/100], true
}
