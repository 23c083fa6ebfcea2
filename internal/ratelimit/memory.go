package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory counts in this process, over a sliding window of 60 buckets.
type Memory struct {
	mu     sync.Mutex
	keys   map[string]*window
	now    func() time.Time
	width  time.Duration
	window time.Duration
}

type window struct {
	requests [60]int64
	tokens   [60]int64
	bucket   [60]int64            // the bucket number each slot counts
	leases   map[string]time.Time // stream lease → expiry
}

// NewMemory counts over window (0: a minute); now nil: time.Now.
func NewMemory(w time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	if w <= 0 {
		w = time.Minute
	}
	return &Memory{keys: map[string]*window{}, now: now, width: BucketWidth(w), window: w}
}

func (m *Memory) key(k string) *window {
	w := m.keys[k]
	if w == nil {
		w = &window{leases: map[string]time.Time{}}
		m.keys[k] = w
	}
	return w
}

// sum counts buckets cur-59…cur and reports the oldest non-empty one.
func (w *window) sum(buckets *[60]int64, cur int64) (n, oldest int64) {
	oldest = cur
	for i := range buckets {
		if cur-w.bucket[i] < 60 && buckets[i] > 0 {
			n += buckets[i]
			oldest = min(oldest, w.bucket[i])
		}
	}
	return n, oldest
}

func (w *window) slot(cur int64) int {
	i := int(cur % 60)
	if w.bucket[i] != cur {
		w.bucket[i], w.requests[i], w.tokens[i] = cur, 0, 0
	}
	return i
}

// wait is when bucket oldest leaves the window.
func (m *Memory) wait(oldest int64, now time.Time) time.Duration {
	return time.Unix(0, (oldest+60)*int64(m.width)).Sub(now)
}

func (m *Memory) Admit(_ context.Context, key string, l Limits, lease string, ttl time.Duration) (Verdict, error) {
	now := m.now()
	cur := now.UnixNano() / int64(m.width)
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.key(key)
	if l.RPM > 0 {
		if n, oldest := w.sum(&w.requests, cur); n >= l.RPM {
			return Verdict{Limit: "rpm", Wait: m.wait(oldest, now)}, nil
		}
	}
	if l.TPM > 0 {
		if n, oldest := w.sum(&w.tokens, cur); n >= l.TPM {
			return Verdict{Limit: "tpm", Wait: m.wait(oldest, now)}, nil
		}
	}
	if lease != "" && l.MaxStreams > 0 {
		for id, exp := range w.leases {
			if !exp.After(now) {
				delete(w.leases, id)
			}
		}
		if int64(len(w.leases)) >= l.MaxStreams {
			return Verdict{Limit: "max_streams", Wait: time.Second}, nil
		}
		w.leases[lease] = now.Add(ttl)
	}
	w.requests[w.slot(cur)]++
	return Verdict{}, nil
}

func (m *Memory) Done(_ context.Context, key string, tokens int64, lease string) error {
	cur := m.now().UnixNano() / int64(m.width)
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.key(key)
	if tokens > 0 {
		w.tokens[w.slot(cur)] += tokens
	}
	delete(w.leases, lease)
	return nil
}

func (m *Memory) Renew(_ context.Context, leases map[string]string, ttl time.Duration) error {
	exp := m.now().Add(ttl)
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, k := range leases {
		if w := m.keys[k]; w != nil {
			if _, ok := w.leases[id]; ok {
				w.leases[id] = exp
			}
		}
	}
	return nil
}

// Heartbeat: one process is one replica.
func (m *Memory) Heartbeat(context.Context, string, time.Duration) (int, error) { return 1, nil }
