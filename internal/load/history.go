package load

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"
)

// Utilization is how busy the target is, 0–1: its running sequences over
// the capacity it has shown, else its KV-cache use; ok is false when it
// reports neither.
func (r Report) Utilization() (u float64, ok bool) {
	switch l := r.Load; {
	case l.Capacity > 0:
		return min(float64(l.Running)/float64(l.Capacity), 1), true
	case l.KVCache >= 0:
		return l.KVCache, true
	}
	return 0, false
}

// Sample is a target's load at one time.
type Sample struct {
	At time.Time
	// Utilization is NaN when the target reported none (see Report.Utilization).
	Utilization float64
	Queue       float64 // requests waiting in the server's own queue
}

// sample is a Sample as kept: a day of them per target stays small.
type sample struct {
	at          int64 // Unix seconds
	util, queue float32
}

// History keeps each target's utilization and queue over a span (the
// tide, for the console): a ring of samples per target, one per Every,
// taken by Run. Safe for concurrent use.
type History struct {
	every time.Duration
	size  int

	mu    sync.Mutex
	rings map[string]*ring // by target
}

type ring struct {
	buf  []sample
	next int // where the next sample goes once buf is full
}

// NewHistory keeps span's worth of samples taken every every (at least
// one second apart).
func NewHistory(every, span time.Duration) *History {
	every = max(every, time.Second)
	return &History{every: every, size: max(int(span/every), 2), rings: map[string]*ring{}}
}

// Run samples reports every interval until ctx ends, once at once.
func (h *History) Run(ctx context.Context, reports func() []Report) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		h.Sample(time.Now(), reports())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample records each target's load at now.
func (h *History) Sample(now time.Time, rs []Report) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range rs {
		u, ok := r.Utilization()
		if !ok {
			u = math.NaN()
		}
		s := sample{at: now.Unix(), util: float32(u), queue: float32(r.Load.Waiting)}
		name := r.Target.String()
		rg := h.rings[name]
		if rg == nil {
			rg = &ring{buf: make([]sample, 0, min(h.size, 64))}
			h.rings[name] = rg
		}
		if len(rg.buf) < h.size {
			rg.buf = append(rg.buf, s)
			continue
		}
		rg.buf[rg.next] = s
		rg.next = (rg.next + 1) % h.size
	}
}

// Targets lists the targets sampled, by name.
func (h *History) Targets() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.rings))
	for name := range h.rings {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Series is target's samples, oldest first, in at most points points:
// when there are more, consecutive samples are merged, utilization by
// its mean (of the known) and queue by its peak (a peak is what a queue
// chart is read for).
func (h *History) Series(target string, points int) []Sample {
	h.mu.Lock()
	rg := h.rings[target]
	var all []sample
	if rg != nil {
		all = make([]sample, 0, len(rg.buf))
		all = append(all, rg.buf[rg.next:]...)
		all = append(all, rg.buf[:rg.next]...)
	}
	h.mu.Unlock()
	points = max(points, 1)
	per := (len(all) + points - 1) / points
	out := make([]Sample, 0, min(len(all), points))
	for i := 0; i < len(all); i += per {
		group := all[i:min(i+per, len(all))]
		var sum float64
		var known int
		p := Sample{At: time.Unix(group[len(group)-1].at, 0).UTC()}
		for _, s := range group {
			if !math.IsNaN(float64(s.util)) {
				sum += float64(s.util)
				known++
			}
			p.Queue = max(p.Queue, float64(s.queue))
		}
		p.Utilization = math.NaN()
		if known > 0 {
			p.Utilization = sum / float64(known)
		}
		out = append(out, p)
	}
	return out
}
