package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/ledger"
)

// Reserve holds every amount atomically: either all holds are taken, or none
// is and the first hard budget that could not hold its amount is reported.
// A hold is taken only while spent + reserved + amount stays within the
// budget, checked and applied in one conditional UPDATE, so concurrent
// reservations can never jointly pass a budget.
func (s *DB) Reserve(ctx context.Context, r *ledger.Reservation) error {
	if r.ID == "" {
		r.ID = ids.New("res")
	}
	holds, _ := json.Marshal(r.Holds)
	return s.writeRefusable(ctx, false, windowLocks(r.Holds), func(ctx context.Context, tx *sql.Tx) error {
		for _, h := range r.Holds {
			query, args := sqlHoldWithin, []any{h.Amount, h.BudgetID, h.PeriodStart, h.Amount, h.BudgetID}
			if h.Soft {
				query, args = sqlHoldSoft, args[:3]
			}
			// The window exists but for a period's first request: it is
			// created only when the hold finds no row, then the hold is tried
			// again (one statement less for every other request).
			held, err := s.hold(ctx, tx, query, args)
			if err == nil && !held {
				if _, err = s.txExec(ctx, tx, sqlEnsureWindow, h.BudgetID, h.PeriodStart); err == nil {
					held, err = s.hold(ctx, tx, query, args)
				}
			}
			if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			if !held {
				return s.exceeded(ctx, tx, h)
			}
		}
		_, err := s.txExec(ctx, tx, sqlInsertReservation,
			r.ID, string(holds), micros(s.now()), micros(r.ExpiresAt))
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	})
}

// hold runs a hold's UPDATE; false when it changed no row (no window yet,
// or the budget cannot keep the amount).
func (s *DB) hold(ctx context.Context, tx *sql.Tx, query string, args []any) (bool, error) {
	res, err := s.txExec(ctx, tx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Settle ends a reservation: each hold's amount is released and the true cost
// (actual[i] for Holds[i]) is spent, and the usage records are written, all in
// one transaction. Records are idempotent on (request_id, attempt), and a
// reservation is settled at most once: settling one already released by the
// reconciler still spends the true cost and writes the records.
func (s *DB) Settle(ctx context.Context, r *ledger.Reservation, actual []int64, records []ledger.Entry) error {
	return s.writeLocked(ctx, true, windowLocks(r.Holds), func(ctx context.Context, tx *sql.Tx) error {
		var held int64
		if !r.Local {
			res, err := s.txExec(ctx, tx, sqlDeleteReservation, r.ID)
			if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			held, _ = res.RowsAffected()
		}
		fresh, err := s.insertUsage(ctx, tx, records)
		if err != nil {
			return err
		}
		for i, h := range r.Holds {
			release := h.Amount
			if held == 0 {
				release = 0 // the reconciler released it already
			}
			spend := int64(0)
			if i < len(actual) && (held == 1 || fresh) {
				spend = max(actual[i], 0) // settlement never lowers what was spent
			}
			if release == 0 && spend == 0 {
				continue
			}
			if _, err := s.txExec(ctx, tx, sqlSettleWindow, h.BudgetID, h.PeriodStart, spend, -release); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		return nil
	})
}

// ReleaseExpired releases reservations whose holder is presumed dead (a
// crash, a kill): their holds return to the budgets. It returns how many.
func (s *DB) ReleaseExpired(ctx context.Context, now time.Time) (int, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, holds FROM reservations WHERE expires_at <= ?`), micros(now))
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	var expired []ledger.Reservation
	for rows.Next() {
		var r ledger.Reservation
		var holds string
		if err := rows.Scan(&r.ID, &holds); err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: %w", err)
		}
		_ = json.Unmarshal([]byte(holds), &r.Holds)
		expired = append(expired, r)
	}
	rows.Close()
	released := 0
	for i := range expired {
		err := s.retryTx(ctx, func(tx *sql.Tx) error {
			// The windows first, as a batch that settles this reservation
			// takes them (see locks.go).
			if err := s.takeLocks(ctx, tx, windowLocks(expired[i].Holds)); err != nil {
				return err
			}
			res, err := s.txExec(ctx, tx, sqlDeleteReservation, expired[i].ID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return errGone // settled meanwhile
			}
			for _, h := range expired[i].Holds {
				if _, err := s.txExec(ctx, tx, sqlReleaseWindow,
					h.Amount, h.BudgetID, h.PeriodStart); err != nil {
					return err
				}
			}
			return nil
		})
		switch {
		case err == nil:
			released++
		case errors.Is(err, errGone):
		default:
			return released, fmt.Errorf("store: %w", err)
		}
	}
	return released, nil
}

var errGone = errors.New("gone")

// exceeded explains a hold that did not fit: the budget and its window as
// the refusing transaction saw them.
func (s *DB) exceeded(ctx context.Context, tx *sql.Tx, h ledger.Hold) error {
	e := &ledger.BudgetExceededError{BudgetID: h.BudgetID, Want: h.Amount}
	err := tx.QueryRowContext(ctx, s.q(`SELECT b.amount, w.spent, w.reserved FROM budgets b JOIN budget_windows w ON w.budget_id = b.id
		WHERE b.id = ? AND w.period_start = ?`), h.BudgetID, h.PeriodStart).Scan(&e.Amount, &e.Spent, &e.Reserved)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return e
}

// BudgetWindow reads a budget's window; zero if it has none yet.
func (s *DB) BudgetWindow(ctx context.Context, budgetID string, periodStart int64) (ledger.Window, error) {
	var w ledger.Window
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT spent, reserved FROM budget_windows WHERE budget_id = ? AND period_start = ?`),
		budgetID, periodStart).Scan(&w.Spent, &w.Reserved)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Window{}, nil
	}
	return w, err
}

// OpenReservations counts reservations not yet settled or released.
func (s *DB) OpenReservations(ctx context.Context) (int, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM reservations`).Scan(&n)
	return n, err
}
