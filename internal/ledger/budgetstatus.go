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
