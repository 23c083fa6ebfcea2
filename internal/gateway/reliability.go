package gateway

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// RetryBudget caps extra attempts that fail. Every request earns Ratio of a
// retry and every retry spends one, up to Burst saved; a retry that succeeds
// is refunded, and while the latest retry succeeded, retries go ahead even
// with the budget empty. So failing over from one bad target to good ones
// is never rationed, while with the whole fleet failing retries stop paying
// off and attempts stay within (1 + Ratio) × requests + Burst. Health
// ejection soon stops those attempts altogether: no retry storm.
type RetryBudget struct {
	Ratio float64 // default 0.2
	Burst float64 // default 10

	mu          sync.Mutex
	tokens      float64
	lastRetryOK bool
	init        bool
}

func (b *RetryBudget) defaults() {
	if !b.init {
		if b.Ratio <= 0 {
			b.Ratio = 0.2
		}
		if b.Burst <= 0 {
			b.Burst = 10
		}
		b.tokens, b.lastRetryOK, b.init = b.Burst, true, true
	}
}

// Earn credits a new request.
func (b *RetryBudget) Earn() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.defaults()
	b.tokens = min(b.tokens+b.Ratio, b.Burst)
}

// Spend takes one retry if the budget allows it.
func (b *RetryBudget) Spend() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.defaults()
	switch {
	case b.tokens >= 1:
		b.tokens--
		return true
	case b.lastRetryOK:
		return true
	}
	return false
}

// Report tells the budget how a retry ended.
func (b *RetryBudget) Report(ok bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.defaults()
	b.lastRetryOK = ok
	if ok {
		b.tokens = min(b.tokens+1, b.Burst)
	}
}

// healthResult says what an attempt's outcome means for its target.
func healthResult(err error) (router.Result, time.Duration) {
	if err == nil {
		return router.Success, 0
	}
	e := provider.AsError(err)
	switch e.Kind {
	case provider.KindRateLimited, provider.KindQuotaExceeded:
		return router.RateLimited, e.RetryAfter
	case provider.KindUpstreamAuth:
		return router.AuthFailure, 0
	case provider.KindInvalidRequest, provider.KindContextLength, provider.KindContentFilter,
		provider.KindUnsupported, provider.KindCanceled, provider.KindNotFound, provider.KindTooLarge:
		return router.Neutral, 0
	}
	return router.Failure, 0
}

// minAttempt is the least time worth starting an attempt with: an attempt
// that cannot finish before the deadline only adds load.
const minAttempt = 50 * time.Millisecond

// Slots bounds concurrent requests per key (a target or a route). A full
// key is skipped or refused at once: load is shed, never queued.
type Slots struct {
	mu     sync.Mutex
	limits map[string]int
	used   map[string]int
}

// NewSlots makes a limiter; keys without a limit (or 0) are unbounded.
func NewSlots(limits map[string]int) *Slots {
	return &Slots{limits: limits, used: map[string]int{}}
}

// Take takes a slot; the returned func gives it back, once.
func (s *Slots) Take(key string) (release func(), ok bool) {
	if s == nil || s.limits[key] <= 0 {
		return func() {}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used[key] >= s.limits[key] {
		return nil, false
	}
	s.used[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.used[key]--
			s.mu.Unlock()
		})
	}, true
}

// fitPlan drops targets whose known context window is too small for the
// prompt. It estimates the prompt at four bytes a token, typical rather than
// worst case, so a target is never dropped on a pessimistic guess; a prompt
// that fits no target is refused at once.
func (g *Gateway) fitPlan(plan []router.Target, promptBytes int64) ([]router.Target, error) {
	if len(g.ContextWindows) == 0 {
		return plan, nil
	}
	tokens := promptBytes / 4
	var fit []router.Target
	largest := 0
	for _, t := range plan {
		w := g.ContextWindows[t.String()]
		largest = max(largest, w)
		if w == 0 || int64(w) >= tokens {
			fit = append(fit, t)
		}
	}
	if len(fit) == 0 {
		return nil, &provider.Error{Kind: provider.KindContextLength, Code: "context_length_exceeded", Param: "messages",
			Message: fmt.Sprintf("the prompt (about %d tokens) is longer than every target's context (the largest is %d)", tokens, largest)}
	}
	return fit, nil
}

// largerContext reports whether t has a known context window larger than failed's.
func (g *Gateway) largerContext(t, failed router.Target) bool {
	fw, tw := g.ContextWindows[failed.String()], g.ContextWindows[t.String()]
	return fw > 0 && tw > fw
}

// needs lists the capabilities a request needs.
func needs(req *llm.ChatRequest) []string {
	var out []string
	if len(req.Tools) > 0 {
		out = append(out, "tools")
	}
	for _, m := range req.Messages {
		for _, p := range m.Content.Parts {
			if p.Type == "image_url" {
				return append(out, "vision")
			}
		}
	}
	return out
}

// ablePlan drops targets declared unable to serve the request (no tools,
// no vision); none left is a client error, answered at once.
func (g *Gateway) ablePlan(plan []router.Target, req *llm.ChatRequest) ([]router.Target, error) {
	need := needs(req)
	if len(need) == 0 || len(g.Unsupported) == 0 {
		return plan, nil
	}
	var able []router.Target
	for _, t := range plan {
		ok := true
		for _, lack := range g.Unsupported[t.String()] {
			for _, n := range need {
				ok = ok && lack != n
			}
		}
		if ok {
			able = append(able, t)
		}
	}
	if len(able) == 0 {
		return nil, &provider.Error{Kind: provider.KindUnsupported, Code: "unsupported_capability",
			Message: fmt.Sprintf("no target of %q supports %s", req.Model, strings.Join(need, " and "))}
	}
	return able, nil
}
