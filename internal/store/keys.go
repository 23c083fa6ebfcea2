package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
)

// EnsureProject returns the project of that name, creating it if needed.
func (s *DB) EnsureProject(ctx context.Context, name string) (keys.Project, error) {
	p := keys.Project{ID: ids.New("prj"), Name: name, CreatedAt: s.now().UTC()}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		p.ID, p.Name, micros(p.CreatedAt)); err != nil {
		return keys.Project{}, fmt.Errorf("store: %w", err)
	}
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, created_at FROM projects WHERE name = ?`), name).Scan(&p.ID, &created)
	if err != nil {
		return keys.Project{}, fmt.Errorf("store: %w", err)
	}
	p.CreatedAt = fromMicros(created)
	return p, nil
}

// CreateKey stores a key and its budget in one transaction.
func (s *DB) CreateKey(ctx context.Context, k *keys.Key) error {
	models, _ := json.Marshal(k.Models)
	if k.Models == nil {
		models = []byte("[]")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now().UTC()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO api_keys (id, hash, prefix, name, project_id, models, rpm, tpm, max_streams, expires_at, created_at, revoked_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`),
			k.ID, k.Hash, k.Prefix, k.Name, k.ProjectID, string(models), k.RPM, k.TPM, k.MaxStreams, micros(k.ExpiresAt), micros(k.CreatedAt))
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := s.bumpKeyEpoch(ctx, tx); err != nil {
			return err
		}
		if k.Budget != nil {
			k.Budget.Scope, k.Budget.ScopeID = ledger.ScopeKey, k.ID
			return s.putBudget(ctx, tx, k.Budget)
		}
		return nil
	})
}

// SetProjectBudget sets (or replaces) a project's budget.
func (s *DB) SetProjectBudget(ctx context.Context, projectID string, b *ledger.Budget) error {
	b.Scope, b.ScopeID = ledger.ScopeProject, projectID
	return s.tx(ctx, func(tx *sql.Tx) error { return s.putBudget(ctx, tx, b) })
}

func (s *DB) putBudget(ctx context.Context, tx *sql.Tx, b *ledger.Budget) error {
	if b.ID == "" {
		b.ID = ids.New("bud")
	}
	soft := 0
	if b.Soft {
		soft = 1
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO budgets (id, scope, scope_id, currency, amount, period, soft) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, scope_id) DO UPDATE SET currency = excluded.currency, amount = excluded.amount, period = excluded.period, soft = excluded.soft`),
		b.ID, b.Scope, b.ScopeID, b.Currency, b.Amount, b.Period, soft)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return tx.QueryRowContext(ctx, s.q(`SELECT id FROM budgets WHERE scope = ? AND scope_id = ?`), b.Scope, b.ScopeID).Scan(&b.ID)
}

const keyColumns = `k.id, k.hash, k.prefix, k.name, k.project_id, p.name, k.models, k.rpm, k.tpm, k.max_streams, k.expires_at, k.created_at, k.revoked_at`

func scanKey(row interface{ Scan(...any) error }) (*keys.Key, error) {
	var k keys.Key
	var models string
	var expires, created, revoked int64
	if err := row.Scan(&k.ID, &k.Hash, &k.Prefix, &k.Name, &k.ProjectID, &k.ProjectName, &models, &k.RPM, &k.TPM, &k.MaxStreams, &expires, &created, &revoked); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(models), &k.Models)
	k.ExpiresAt, k.CreatedAt, k.RevokedAt = fromMicros(expires), fromMicros(created), fromMicros(revoked)
	return &k, nil
}

// KeyByHash finds a key by the hash of its secret, revoked or not.
func (s *DB) KeyByHash(ctx context.Context, hash string) (*keys.Key, error) {
	row := s.queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.hash = ?`, hash)
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keys.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return k, nil
}

// KeyByID finds a key by its id, revoked or not (a batch re-checks the
// key it bills to before each item).
func (s *DB) KeyByID(ctx context.Context, id string) (*keys.Key, error) {
	row := s.queryRow(ctx, `SELECT `+keyColumns+` FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.id = ?`, id)
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keys.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return k, nil
}

// ListKeys lists every key with its budget, newest first.
func (s *DB) ListKeys(ctx context.Context) ([]keys.Key, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys k JOIN projects p ON p.id = k.project_id ORDER BY k.created_at DESC, k.id`)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []keys.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		bs, err := s.Budgets(ctx, out[i].ID, "")
		if err != nil {
			return nil, err
		}
		if len(bs) > 0 {
			out[i].Budget = &bs[0]
		}
	}
	return out, nil
}

// RevokeKey revokes a key at once; revoking twice keeps the first time.
func (s *DB) RevokeKey(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`), micros(s.now()), id)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return keys.ErrNotFound
		}
		return s.bumpKeyEpoch(ctx, tx)
	})
}

// bumpKeyEpoch marks, inside the transaction that changes a key, that cached
// keys are stale.
func (s *DB) bumpKeyEpoch(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE key_epoch SET epoch = epoch + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// KeyEpoch reads the count of changes to keys (see keys.Cache).
func (s *DB) KeyEpoch(ctx context.Context) (int64, error) {
	var epoch int64
	if err := s.queryRow(ctx, `SELECT epoch FROM key_epoch WHERE id = 1`).Scan(&epoch); err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return epoch, nil
}

// Budgets returns the budgets that apply to a key and its project.
func (s *DB) Budgets(ctx context.Context, keyID, projectID string) ([]ledger.Budget, error) {
	rows, err := s.query(ctx, `SELECT id, scope, scope_id, currency, amount, period, soft FROM budgets
		WHERE (scope = 'key' AND scope_id = ?) OR (scope = 'project' AND scope_id = ?) ORDER BY scope`, keyID, projectID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []ledger.Budget
	for rows.Next() {
		var b ledger.Budget
		var soft int64
		if err := rows.Scan(&b.ID, &b.Scope, &b.ScopeID, &b.Currency, &b.Amount, &b.Period, &soft); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		b.Soft = soft == 1
		out = append(out, b)
	}
	return out, rows.Err()
}
