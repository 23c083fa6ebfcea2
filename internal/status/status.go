// Package status keeps each target's recent record — success rate, time to
// first token, decode rate — in five-minute buckets over the last day, and
// reports it with the breaker's state and the target's effective serving
// time: the share of the window it was not ejected or cooling down.
package status

import (
	"context"
	"github.com/tidegate/tidegate/internal/ability"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/load"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

const (
	bucketSpan = 5 * time.Minute
	buckets    = int(24 * time.Hour / bucketSpan) // a day
	// ttftBins are logarithmic: bin i holds [base^i, base^(i+1)) ms.
	ttftBins = 56
	ttftBase = 1.25
)

type bucket struct {
	start      int64 // unix seconds of the bucket's start; 0: empty
	ok, failed int
	ttft       [ttftBins]uint32
	tpsSum     float64
	tpsN       int
}

type targetStats struct {
	ring [buckets]bucket
}

// Tracker is a request observer and the server's status source.
type Tracker struct {
	// Health gives breaker states and outages; Targets lists what to report
	// (every provider × credential × model in use).
	Health  *router.Health
	Targets func() []router.Target
	// Routes reports the ability routes' live quality; nil: none.
	Routes func() []ability.LiveReport
	// Pool reports the pool's targets' live load; nil: no pool configured.
	Pool    func() []load.Report
	Now     func() time.Time
	started time.Time

	mu      sync.Mutex
	targets map[string]*targetStats
}

// New makes a tracker.
func New(h *router.Health, targets func() []router.Target) *Tracker {
	return &Tracker{Health: h, Targets: targets, Now: time.Now, started: time.Now(), targets: map[string]*targetStats{}}
}

func ttftBin(ms float64) int {
	if ms < 1 {
		return 0
	}
	return min(int(math.Log(ms)/math.Log(ttftBase)), ttftBins-1)
}

// ObserveRequest adds a finished request's attempts.
func (t *Tracker) ObserveRequest(_ context.Context, rec *timing.Record, _ http.Header) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range rec.Attempts {
		a := &rec.Attempts[i]
		if a.Error == "canceled" { // a hedge's loser, or the client left: says nothing of the target
			continue
		}
		ts := t.targets[a.Target]
		if ts == nil {
			ts = &targetStats{}
			t.targets[a.Target] = ts
		}
		at := rec.Received.Add(time.Duration(float64(a.EndAt) * float64(time.Millisecond)))
		start := at.Truncate(bucketSpan).Unix()
		b := &ts.ring[(start/int64(bucketSpan/time.Second))%int64(buckets)]
		if b.start != start {
			*b = bucket{start: start}
		}
		if a.Error != "" {
			b.failed++
			continue
		}
		b.ok++
		if a.TTFT > 0 {
			b.ttft[ttftBin(float64(a.TTFT))]++
		}
		if a.TokensPerSecond > 0 {
			b.tpsSum += a.TokensPerSecond
			b.tpsN++
		}
	}
}

// Window is a target's record over a window.
type Window struct {
	Requests        int     `json:"requests"`
	SuccessRate     float64 `json:"success_rate"`
	TTFTP50         float64 `json:"ttft_p50_ms"`
	TTFTP95         float64 `json:"ttft_p95_ms"`
	TokensPerSecond float64 `json:"tokens_per_second"`
	// EffectiveServing is the share of the window the target could serve:
	// not ejected, not cooling down (for several credentials: while any
	// one could).
	EffectiveServing float64 `json:"effective_serving"`
	// Covered is how much of the window the process has seen.
	Covered string `json:"covered"`
}

// Breaker is one credential's circuit state.
type Breaker struct {
	Credential string    `json:"credential,omitempty"`
	State      string    `json:"state"` // healthy | ejected | half-open
	Until      time.Time `json:"until,omitzero"`
}

// TargetStatus is one target (provider/model).
type TargetStatus struct {
	Target   string    `json:"target"`
	Breakers []Breaker `json:"breakers"`
	Hour     Window    `json:"last_hour"`
	Day      Window    `json:"last_day"`
}

// Report is GET /admin/status.
type Report struct {
	At      time.Time      `json:"at"`
	Targets []TargetStatus `json:"targets"`
	// Routes is each ability route's live quality.
	Routes []ability.LiveReport `json:"routes,omitempty"`
	// PoolConfigured is whether any self-hosted server is in the pool;
	// Pool is each of its configured targets' live load, cost and share.
	PoolConfigured bool         `json:"pool_configured"`
	Pool           []PoolTarget `json:"pool,omitempty"`
}

// Status reports every target.
func (t *Tracker) Status(context.Context) (any, error) { return t.Report(), nil }

// Report builds the status report.
func (t *Tracker) Report() Report {
	now := t.Now()
	byName := map[string][]router.Target{}
	var names []string
	for _, tg := range t.Targets() {
		n := tg.String()
		if _, ok := byName[n]; !ok {
			names = append(names, n)
		}
		byName[n] = append(byName[n], tg)
	}
	sort.Strings(names)
	rep := Report{At: now}
	if t.Routes != nil {
		rep.Routes = t.Routes()
	}
	if t.Pool != nil {
		rep.PoolConfigured, rep.Pool = true, poolTargets(t.Pool())
	}
	for _, n := range names {
		ts := TargetStatus{Target: n}
		var outages [][]router.Outage
		for _, tg := range byName[n] {
			b := Breaker{Credential: tg.Credential, State: "healthy"}
			if t.Health != nil {
				b.State, b.Until = t.Health.State(tg)
				outages = append(outages, t.Health.Outages(tg))
			}
			ts.Breakers = append(ts.Breakers, b)
		}
		ts.Hour = t.window(n, outages, now, time.Hour)
		ts.Day = t.window(n, outages, now, 24*time.Hour)
		rep.Targets = append(rep.Targets, ts)
	}
	return rep
}

func (t *Tracker) window(name string, outages [][]router.Outage, now time.Time, span time.Duration) Window {
	from := now.Add(-span)
	if from.Before(t.started) {
		from = t.started
	}
	w := Window{Covered: now.Sub(from).Round(time.Second).String()}
	var hist [ttftBins]uint32
	var tps float64
	var tpsN, ok, failed int
	t.mu.Lock()
	if ts := t.targets[name]; ts != nil {
		for i := range ts.ring {
			b := &ts.ring[i]
			if b.start == 0 || time.Unix(b.start, 0).Add(bucketSpan).Before(from) {
				continue
			}
			ok += b.ok
			failed += b.failed
			tps += b.tpsSum
			tpsN += b.tpsN
			for j := range hist {
				hist[j] += b.ttft[j]
			}
		}
	}
	t.mu.Unlock()
	w.Requests = ok + failed
	if w.Requests > 0 {
		w.SuccessRate = float64(ok) / float64(w.Requests)
	}
	if tpsN > 0 {
		w.TokensPerSecond = tps / float64(tpsN)
	}
	w.TTFTP50, w.TTFTP95 = quantile(hist[:], 0.5), quantile(hist[:], 0.95)
	w.EffectiveServing = serving(outages, from, now)
	return w
}

// quantile reads a log histogram: the geometric middle of the bin holding q.
func quantile(hist []uint32, q float64) float64 {
	var total uint64
	for _, c := range hist {
		total += uint64(c)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range hist {
		seen += uint64(c)
		if seen >= rank {
			return math.Pow(ttftBase, float64(i)+0.5)
		}
	}
	return math.Pow(ttftBase, float64(len(hist)))
}

// serving is the share of [from, now) in which at least one credential was
// not out: one minus the intersection of every credential's outages.
func serving(outages [][]router.Outage, from, now time.Time) float64 {
	span := now.Sub(from)
	if span <= 0 || len(outages) == 0 {
		return 1
	}
	// Sweep the clipped interval ends; down while every credential is out.
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, os := range outages {
		for _, o := range os {
			a, b := o.From, o.Until
			if a.Before(from) {
				a = from
			}
			if b.After(now) {
				b = now
			}
			if b.After(a) {
				edges = append(edges, edge{a, 1}, edge{b, -1})
			}
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	var down time.Duration
	out := 0
	var since time.Time
	for _, e := range edges {
		if out == len(outages) {
			down += e.at.Sub(since)
		}
		out += e.delta
		since = e.at
	}
	return 1 - float64(down)/float64(span)
}
