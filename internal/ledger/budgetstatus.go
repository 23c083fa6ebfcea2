package ledger

import "time"

// BudgetStatus is a budget and what its current period holds.
type BudgetStatus struct {
	Budget
	Owner       string    // the key's or project's name
	PeriodStart time.Time // zero for a total budget
	PeriodEnd   time.Time // zero for a total budget: it never ends
	Spent, Held int64     // micro-units
}

// PeriodEnd is when the budget window holding t ends; zero for a total
// budget, whose one window never ends.
func PeriodEnd(period string, t time.Time) time.Time {
	start := time.UnixMicro(PeriodStart(period, t)).UTC()
	switch period {
	case PeriodDay:
		return start.AddDate(0, 0, 1)
	case PeriodMonth:
		return start.AddDate(0, 1, 0)
	}
	return time.Time{}
}

// Held is what this process holds on a budget window right now: with
// LocalHolds the holds live in memory, not in the store.
func (l *LocalHolds) Held(budgetID string, periodStart int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.windows[windowKey{budgetID, periodStart}]; w != nil {
		return w.reserved
	}
	return 0
}
