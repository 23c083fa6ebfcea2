package gateway

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// hedged opens a stream like try, but when the current attempt has produced
// no first token after delay, it races the next target too (paid from the
// retry budget). The first stream to produce a token wins; the others are
// cancelled and billed for their prompt, estimated. A failure before the
// delay fails over as usual.
func (g *Gateway) hedged(ctx context.Context, plan []router.Target, req *llm.ChatRequest, delay time.Duration, tab Tab, promptEstimate int64) (*Stream, Outcome, error) {
	type result struct {
		s       *Stream
		err     error
		target  router.Target
		number  int
		started time.Time
		release func()
		pass    router.Pass
	}
	var out Outcome
	results := make(chan result, len(plan))
	cancels := map[int]context.CancelFunc{}
	next, running := 0, 0
	var last error
	var soonest time.Duration
	g.Retries.Earn()

	// launch starts the next admitted target; false when none is left.
	launch := func() bool {
		for next < len(plan) {
			t := plan[next]
			next++
			p, ok := g.provider(t.ProviderKey())
			if !ok {
				continue
			}
			release, free := g.TargetSlots.Take(t.String())
			if !free {
				continue
			}
			var pass router.Pass
			if g.Health != nil {
				var admitted bool
				var wait time.Duration
				if pass, admitted, wait = g.Health.Admit(t); !admitted {
					release()
					if soonest == 0 || wait < soonest {
						soonest = wait
					}
					continue
				}
			}
			out.Attempts++
			n := out.Attempts
			actx, cancel := context.WithCancel(ctx)
			cancels[n] = cancel
			running++
			go func() {
				started := time.Now()
				s, err := g.openStream(actx, p, t, req)
				results <- result{s, err, t, n, started, release, pass}
			}()
			return true
		}
		return false
	}
	// settleLoser closes a stream that lost the race and bills its prompt.
	settleLoser := func(r result) {
		g.healthDone(r.pass, nil, true)
		if r.s == nil {
			// No token by the time it lost: its time to first token is at
			// least this long, which is what latency order needs to know.
			g.TTFTs.Observe(r.target, time.Since(r.started))
		}
		r.release()
		if r.s != nil {
			r.s.inner.Close()
			r.s.cancel()
			r.s.endAttempt(&provider.Error{Kind: provider.KindCanceled})
		}
		tab.Record(Attempt{Target: r.target, Number: r.number, Status: "canceled", Estimated: true,
			Usage: llm.Usage{PromptTokens: int(promptEstimate), TotalTokens: int(promptEstimate)}, Latency: time.Since(r.started)})
	}

	if !launch() {
		return nil, out, &provider.Error{Kind: provider.KindOverloaded, Code: "no_healthy_target", RetryAfter: soonest,
			Message: "every target of this model is unhealthy or busy; retry after the indicated time"}
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for running > 0 {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				g.healthDone(r.pass, nil, false)
				if r.number > 1 {
					g.Retries.Report(true)
				}
				// The winner: cancel the rest and bill them when they return.
				for n, cancel := range cancels {
					if n != r.number {
						cancel()
					}
				}
				losers := make(chan struct{})
				go func(pending int) {
					defer close(losers)
					for ; pending > 0; pending-- {
						settleLoser(<-results)
					}
				}(running)
				// The bill is settled once, after the cancelled losers are on it.
				r.s.beforeSettle = func() { <-losers }
				out.Route = r.target
				r.s.holdSlot(r.release)
				r.s.started = r.started
				r.s.attempt = Attempt{Target: r.target, Number: r.number}
				return r.s, out, nil
			}
			g.healthDone(r.pass, r.err, false)
			r.release()
			last = r.err
			if ctx.Err() != nil {
				// The request is over: attempts still in flight end with it;
				// give their slots and admissions back as they return.
				go func(pending int) {
					for ; pending > 0; pending-- {
						r := <-results
						g.healthDone(r.pass, nil, true)
						r.release()
						if r.s != nil {
							r.s.inner.Close()
							r.s.cancel()
							r.s.endAttempt(&provider.Error{Kind: provider.KindCanceled})
						}
					}
				}(running)
				return nil, out, provider.ClassifyTransport(ctx.Err())
			}
			if provider.AsError(r.err).Kind.Retryable() && running == 0 && (out.Attempts == 0 || g.Retries.Spend()) {
				launch()
			}
		case <-timer.C:
			if next < len(plan) && g.Retries.Spend() {
				launch()
			}
		}
	}
	if last == nil {
		last = &provider.Error{Kind: provider.KindOverloaded, Code: "no_healthy_target", RetryAfter: soonest, Message: "no target could take the request"}
	}
	return nil, out, last
}

// TTFT learns each target's time to first token from its recent streams.
type TTFT struct {
	mu      sync.Mutex
	samples map[router.Target]*ttftRing
}

type ttftRing struct {
	d [128]time.Duration
	n int // samples so far (the ring holds the last 128)
}

// Observe records one stream's time to first token.
func (l *TTFT) Observe(t router.Target, d time.Duration) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.samples == nil {
		l.samples = map[router.Target]*ttftRing{}
	}
	r := l.samples[t]
	if r == nil {
		r = &ttftRing{}
		l.samples[t] = r
	}
	r.d[r.n%len(r.d)] = d
	r.n++
}

// P95 is a target's learned 95th percentile, false until it has 20 samples.
func (l *TTFT) P95(t router.Target) (time.Duration, bool) { return l.quantile(t, 95) }

// P50 is a target's learned median, false until it has 20 samples.
func (l *TTFT) P50(t router.Target) (time.Duration, bool) { return l.quantile(t, 50) }

func (l *TTFT) quantile(t router.Target, pct int) (time.Duration, bool) {
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

// hedgeDelay is a route's configured delay, or its first target's learned
// p95 time to first token (1 s until learned).
func (g *Gateway) hedgeDelay(model string, plan []router.Target) time.Duration {
	d, on := g.Hedges[model]
	if !on {
		return 0
	}
	if d > 0 {
		return d
	}
	if p95, ok := g.TTFTs.P95(plan[0]); ok {
		return p95
	}
	return time.Second
}
