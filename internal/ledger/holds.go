package ledger

import (
	"context"
	"sync"
)

// Budgeter takes and settles holds on budgets.
type Budgeter interface {
	Reserve(ctx context.Context, r *Reservation, budgets []Budget) error
	Settle(ctx context.Context, r *Reservation, actual []int64, records []Entry) error
}

// DBHolds keeps holds in the database: what several replicas sharing one
// PostgreSQL need, since a budget is only as safe as the place its holds live.
type DBHolds struct{ Store HoldStore }

func (d DBHolds) Reserve(ctx context.Context, r *Reservation, _ []Budget) error {
	return d.Store.Reserve(ctx, r)
}

func (d DBHolds) Settle(ctx context.Context, r *Reservation, actual []int64, records []Entry) error {
	return d.Store.Settle(ctx, r, actual, records)
}

// LocalHolds keeps holds in memory and spending in the database: for the
// SQLite store, which one process owns. The check and the hold are one step
// under a mutex; a crash loses only the holds of requests that died with it,
// so nothing is left to reconcile. Spending is read from the store once per
// budget window and kept current by every settlement.
type LocalHolds struct {
	Store HoldStore

	mu      sync.Mutex
	windows map[windowKey]*localWindow
}

type windowKey struct {
	budget string
	period int64
}

type localWindow struct {
	spent, reserved int64
}

// window returns a budget window, loading its spending on first use.
func (l *LocalHolds) window(ctx context.Context, h Hold) (*localWindow, error) {
	k := windowKey{h.BudgetID, h.PeriodStart}
	l.mu.Lock()
	w := l.windows[k]
	l.mu.Unlock()
	if w != nil {
		return w, nil
	}
	dbw, err := l.Store.BudgetWindow(ctx, h.BudgetID, h.PeriodStart)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.windows == nil {
		l.windows = map[windowKey]*localWindow{}
	}
	if w = l.windows[k]; w == nil { // another request may have loaded it meanwhile
		w = &localWindow{spent: dbw.Spent}
		l.windows[k] = w
	}
	return w, nil
}

func (l *LocalHolds) Reserve(ctx context.Context, r *Reservation, budgets []Budget) error {
	ws := make([]*localWindow, len(r.Holds))
	for i, h := range r.Holds {
		w, err := l.window(ctx, h)
		if err != nil {
			return err
		}
		ws[i] = w
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, h := range r.Holds {
		if !h.Soft && addMicros(addMicros(ws[i].spent, ws[i].reserved), h.Amount) > budgets[i].Amount {
			return &BudgetExceededError{BudgetID: h.BudgetID, Amount: budgets[i].Amount, Spent: ws[i].spent, Reserved: ws[i].reserved, Want: h.Amount}
		}
	}
	for i, h := range r.Holds {
		ws[i].reserved += h.Amount
	}
	return nil
}

func (l *LocalHolds) Settle(ctx context.Context, r *Reservation, actual []int64, records []Entry) error {
	l.mu.Lock()
	for i, h := range r.Holds {
		if w := l.windows[windowKey{h.BudgetID, h.PeriodStart}]; w != nil {
			w.reserved -= h.Amount
			if i < len(actual) {
				w.spent = addMicros(w.spent, actual[i]) // never lowered: a negative actual adds 0
			}
		}
	}
	l.mu.Unlock()
	// No reservation row exists: Settle spends and records, durably, once.
	local := *r
	local.Local = true
	return l.Store.Settle(ctx, &local, actual, records)
}
