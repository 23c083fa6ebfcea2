package gateway

import "testing"

func TestRetryBudgetBoundsFailingRetries(t *testing.T) {
	b := &RetryBudget{Ratio: 0.2, Burst: 10}
	retries := 0
	const requests = 1000
	for i := 0; i < requests; i++ {
		b.Earn()
		for b.Spend() { // the whole fleet fails: every retry fails too
			retries++
			b.Report(false)
		}
	}
	// One retry may go ahead on trust (the last one succeeded, at start).
	if limit := 0.2*requests + 10 + 1; float64(retries) > limit {
		t.Errorf("%d retries for %d requests with every retry failing; want at most %.0f", retries, requests, limit)
	}
}

func TestRetryBudgetRefundsSuccess(t *testing.T) {
	b := &RetryBudget{Ratio: 0.2, Burst: 1}
	for i := 0; i < 100; i++ { // one bad target, good ones behind it
		if !b.Spend() {
			t.Fatalf("retry %d refused though every retry succeeds", i)
		}
		b.Report(true)
	}
}
