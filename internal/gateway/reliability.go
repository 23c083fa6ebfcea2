package gateway

import (
	"sync"
	"time"

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
