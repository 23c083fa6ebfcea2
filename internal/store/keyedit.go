package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
)

// UpdateKey changes a key's limits, allowlist, expiry and budget in one
// transaction; keys.ErrNotFound if there is none.
func (s *DB) UpdateKey(ctx context.Context, id string, u *keys.Update) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM api_keys WHERE id = ?`), id).Scan(&n); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n == 0 {
			return keys.ErrNotFound
		}
		set := func(column string, v any) error {
			_, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET `+column+` = ? WHERE id = ?`), v, id)
			if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			return nil
		}
		var err error
		for column, v := range map[string]*int64{"rpm": u.RPM, "tpm": u.TPM, "max_streams": u.MaxStreams} {
			if v != nil && err == nil {
				err = set(column, *v)
			}
		}
		if u.Models != nil && err == nil {
			models, _ := json.Marshal(*u.Models)
			if len(*u.Models) == 0 {
				models = []byte("[]")
			}
			err = set("models", string(models))
		}
		if u.ExpiresAt != nil && err == nil {
			err = set("expires_at", micros(*u.ExpiresAt))
		}
		if u.ClearExpiry && err == nil {
			err = set("expires_at", 0)
		}
		if err != nil {
			return err
		}
		if u.RemoveBudget {
			// Retired, not deleted: its windows and any hold still in flight
			// keep their row to settle against, and it no longer applies.
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE budgets SET scope = 'retired', scope_id = id WHERE scope = ? AND scope_id = ?`), ledger.ScopeKey, id); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		if u.Budget != nil {
			u.Budget.Scope, u.Budget.ScopeID = ledger.ScopeKey, id
			if err := s.putBudget(ctx, tx, u.Budget); err != nil {
				return err
			}
		}
		return s.bumpKeyEpoch(ctx, tx)
	})
}

// BudgetStatuses lists every key and project budget in force with its
// owner's name and what its current period has spent and holds (held: the
// store's holds, which are PostgreSQL's; SQLite's live in the process).
func (s *DB) BudgetStatuses(ctx context.Context, now time.Time) ([]ledger.BudgetStatus, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT b.id, b.scope, b.scope_id, b.currency, b.amount, b.period, b.soft,
		COALESCE(k.name, p.name, '') FROM budgets b
		LEFT JOIN api_keys k ON b.scope = 'key' AND k.id = b.scope_id
		LEFT JOIN projects p ON b.scope = 'project' AND p.id = b.scope_id
		WHERE b.scope IN ('key', 'project') ORDER BY b.scope, 8, b.id`)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var out []ledger.BudgetStatus
	for rows.Next() {
		var b ledger.BudgetStatus
		var soft int64
		if err := rows.Scan(&b.ID, &b.Scope, &b.ScopeID, &b.Currency, &b.Amount, &b.Period, &soft, &b.Owner); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		b.Soft = soft == 1
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for i := range out {
		b := &out[i]
		start := ledger.PeriodStart(b.Period, now)
		if b.Period != ledger.PeriodTotal {
			b.PeriodStart = time.UnixMicro(start).UTC()
			b.PeriodEnd, _ = ledger.PeriodEnd(b.Period, now) // zero for a total budget
		}
		w, err := s.BudgetWindow(ctx, b.ID, start)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		b.Spent, b.Held = w.Spent, w.Reserved
	}
	return out, nil
}
