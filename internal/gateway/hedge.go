package gateway

import (
	"context"
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
			p, ok := g.Providers[t.ProviderKey()]
			if !ok {
				continue
			}
			release, free := g.TargetSlots.Take(t.String())
			if !free {
				continue
			}
			if g.Health != nil {
				if admitted, wait := g.Health.Admit(t); !admitted {
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
				results <- result{s, err, t, n, started, release}
			}()
			return true
		}
		return false
	}
	// settleLoser closes a stream that lost the race and bills its prompt.
	settleLoser := func(r result) {
		g.healthDone(r.target, nil, true)
		r.release()
		if r.s != nil {
			r.s.inner.Close()
			r.s.cancel()
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
				g.healthDone(r.target, nil, false)
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
			g.healthDone(r.target, r.err, false)
			r.release()
			last = r.err
			if ctx.Err() != nil {
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
