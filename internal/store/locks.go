package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/reqlog"
)

// On PostgreSQL several replicas write the same hot rows: a budget's window,
// an hour's request counts. A batch (see writer.go) would take those row
// locks in the order its operations arrived, and another replica's batch in
// another order: a deadlock, which PostgreSQL breaks after deadlock_timeout
// (a second, during which both writers stall) by failing one of them. So
// every transaction that writes hot rows takes them first, all of them, in
// one global order: the table, then the row's key. What remains (a row some
// other writer takes out of order) is retried (see retryAlone).

// rowLock is a hot row a write operation will change.
type rowLock struct {
	order string // the table and the row's key: the global lock order
	take  string // creates the row if it is missing, and locks it
	args  []any
}

// sqlTakeWindow creates a budget window or locks it: the no-op update
// takes the row's lock, as an UPDATE would.
const sqlTakeWindow = `INSERT INTO budget_windows (budget_id, period_start, spent, reserved) VALUES (?, ?, 0, 0)
	ON CONFLICT (budget_id, period_start) DO UPDATE SET reserved = budget_windows.reserved`

// sqlTakeHourly creates an hour's count row or locks it.
const sqlTakeHourly = `INSERT INTO request_log_hourly (hour, key_id, verdict, requests, errors) VALUES (?, ?, ?, 0, 0)
	ON CONFLICT (hour, key_id, verdict) DO UPDATE SET requests = request_log_hourly.requests`

func windowLocks(holds []ledger.Hold) []rowLock {
	out := make([]rowLock, 0, len(holds))
	for _, h := range holds {
		out = append(out, rowLock{order: fmt.Sprintf("budget_windows\x00%s\x00%020d", h.BudgetID, h.PeriodStart),
			take: sqlTakeWindow, args: []any{h.BudgetID, h.PeriodStart}})
	}
	return out
}

func hourlyLocks(rows []reqlog.Row) []rowLock {
	var out []rowLock
	for _, k := range hourlyKeys(rows) {
		// Hours are unix seconds, positive: zero-padded, they sort as numbers.
		out = append(out, rowLock{order: fmt.Sprintf("request_log_hourly\x00%020d\x00%s\x00%s", k.hour, k.key, k.verdict),
			take: sqlTakeHourly, args: []any{k.hour, k.key, k.verdict}})
	}
	return out
}

// takeLocks takes locks in the global order, each row once. SQLite has one
// writer, which needs none.
func (s *DB) takeLocks(ctx context.Context, tx *sql.Tx, locks []rowLock) error {
	if s.dialect != Postgres || len(locks) == 0 {
		return nil
	}
	locks = slices.Clone(locks)
	slices.SortFunc(locks, func(a, b rowLock) int { return strings.Compare(a.order, b.order) })
	locks = slices.CompactFunc(locks, func(a, b rowLock) bool { return a.order == b.order })
	for _, l := range locks {
		if _, err := s.txExec(ctx, tx, l.take, l.args...); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}
