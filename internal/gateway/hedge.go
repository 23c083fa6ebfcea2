package gateway

import (
	"context"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// hedged opens a stream like try, but when the current attempt has produced
// no first token after delay, it races the next admitted target too (paid
// from the retry budget, like any retry). The first stream to produce a
// token wins; the others are cancelled and billed for their prompt,
// estimated. A failure fails over as in try, context-length fallback
// included.
func (g *Gateway) hedged(r *run, req *llm.ChatRequest, delay time.Duration, tab Tab, promptEstimate int64) (*Stream, error) {
	type result struct {
		s       *Stream
		err     error
		tk      *ticket
		started time.Time
	}
	ctx := r.ctx
	results := make(chan result, len(r.plan.Targets))
	cancels := map[int]context.CancelFunc{}
	running := 0

	// launch starts the next admitted target; false when none may start.
	launch := func() bool {
		tk, ok := r.admit()
		if !ok {
			return false
		}
		actx, cancel := context.WithCancel(ctx)
		cancels[tk.number] = cancel
		running++
		go func() {
			started := time.Now()
			s, err := g.openStream(actx, tk.p, tk.t, req)
			results <- result{s, err, tk, started}
		}()
		return true
	}
	// drop ends an attempt the gateway no longer wants: its admission and
	// slot go back, its stream (if it got one) is closed.
	drop := func(res result) {
		r.cancelled(res.tk)
		if res.s != nil {
			res.s.inner.Close()
			res.s.cancel()
			res.s.endAttempt(&provider.Error{Kind: provider.KindCanceled})
		}
	}
	// settleLoser drops a stream that lost the race and bills its prompt.
	settleLoser := func(res result) {
		if res.s == nil {
			// No token by the time it lost: its time to first token is at
			// least this long, which is what latency order needs to know.
			g.Router.Learned.TTFT.Observe(res.tk.t, time.Since(res.started))
		}
		drop(res)
		tab.Record(Attempt{Target: res.tk.t, Number: res.tk.number, Status: "canceled", Estimated: true,
			Usage: llm.Usage{PromptTokens: int(promptEstimate), TotalTokens: int(promptEstimate)}, Latency: time.Since(res.started)})
	}

	if !launch() {
		return nil, r.err()
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for running > 0 {
		select {
		case res := <-results:
			running--
			r.done(res.tk, res.err)
			if res.err == nil {
				// The winner: cancel the rest and bill them when they return.
				for n, cancel := range cancels {
					if n != res.tk.number {
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
				s := res.s
				s.beforeSettle = func() { <-losers }
				s.holdSlot(res.tk.release)
				s.started = res.started
				s.attempt = Attempt{Target: res.tk.t, Number: res.tk.number}
				return s, nil
			}
			res.tk.release()
			again := r.failed(res.tk.t, res.err)
			if ctx.Err() != nil {
				// The request is over: attempts still in flight end with it;
				// give their slots and admissions back as they return.
				go func(pending int) {
					for ; pending > 0; pending-- {
						drop(<-results)
					}
				}(running)
				return nil, r.err()
			}
			if again && running == 0 && !launch() {
				return nil, r.err()
			}
		case <-timer.C:
			launch()
		}
	}
	return nil, r.err()
}
