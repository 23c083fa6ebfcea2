package gateway

import (
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// RetryBudget caps extra attempts: every request earns Ratio of a retry, and
// a retry spends one, up to Burst saved. With the whole fleet failing,
// attempts stay within (1 + Ratio) × requests + Burst, and health ejection
// soon stops the attempts altogether: no retry storm.
type RetryBudget struct {
	Ratio float64 // default 0.2
	Burst float64 // default 10

	mu     sync.Mutex
	tokens float64
	init   bool
}

func (b *RetryBudget) defaults() {
	if !b.init {
		if b.Ratio <= 0 {
			b.Ratio = 0.2
		}
		if b.Burst <= 0 {
			b.Burst = 10
		}
		b.tokens, b.init = b.Burst, true
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

// Spend takes one retry if the budget has it.
func (b *RetryBudget) Spend() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.defaults()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
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
