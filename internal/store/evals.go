package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/ids"
)

// itemsPerInsert batches item rows: one statement per 200 items keeps a
// 100,000-item suite to 500 round trips on PostgreSQL.
const itemsPerInsert = 200

// CreateSuite stores a validated suite whole, in one transaction: on any
// error nothing of it is stored. A suite of the same name is eval.ErrExists,
// unless replace, which swaps the old one out in the same transaction.
func (s *DB) CreateSuite(ctx context.Context, su *eval.Suite, replace bool) error {
	if su.ID == "" {
		su.ID = ids.New("evs")
	}
	if su.CreatedAt.IsZero() {
		su.CreatedAt = s.now().UTC().Truncate(time.Microsecond) // as stored
	}
	grader, err := json.Marshal(su.Grader)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	tags, _ := json.Marshal(su.Summarize().Tags)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if replace {
			if err := deleteSuite(ctx, s, tx, su.Name); err != nil && !errors.Is(err, eval.ErrNotFound) {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO eval_suites (id, name, grader, items, tags, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`),
			su.ID, su.Name, string(grader), len(su.Items), string(tags), micros(su.CreatedAt))
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return eval.ErrExists
		}
		for start := 0; start < len(su.Items); start += itemsPerInsert {
			batch := su.Items[start:min(start+itemsPerInsert, len(su.Items))]
			query := `INSERT INTO eval_items (suite_id, seq, id, body) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", len(batch)), ", ")
			args := make([]any, 0, 4*len(batch))
			for i := range batch {
				body, err := json.Marshal(&batch[i])
				if err != nil {
					return fmt.Errorf("store: item %q: %w", batch[i].ID, err)
				}
				args = append(args, su.ID, start+i, batch[i].ID, string(body))
			}
			if _, err := tx.ExecContext(ctx, s.q(query), args...); err != nil {
				return fmt.Errorf("store: suite %s items: %w", su.Name, err)
			}
		}
		return nil
	})
}

func deleteSuite(ctx context.Context, s *DB, tx *sql.Tx, name string) error {
	var id string
	if err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM eval_suites WHERE name = ?`), name).Scan(&id); errors.Is(err, sql.ErrNoRows) {
		return eval.ErrNotFound
	} else if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM eval_items WHERE suite_id = ?`), id); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM eval_suites WHERE id = ?`), id); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// DeleteSuite removes a suite and its items; eval.ErrNotFound if there is none.
func (s *DB) DeleteSuite(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return deleteSuite(ctx, s, tx, name) })
}

const suiteColumns = `s.id, s.name, s.grader, s.items, s.tags, s.created_at`

func scanSummary(row interface{ Scan(...any) error }, extra ...any) (eval.Summary, error) {
	var sum eval.Summary
	var grader, tags string
	var created int64
	if err := row.Scan(append([]any{&sum.ID, &sum.Name, &grader, &sum.ItemCount, &tags, &created}, extra...)...); err != nil {
		return sum, err
	}
	if err := json.Unmarshal([]byte(grader), &sum.Grader); err != nil {
		return sum, fmt.Errorf("suite %s grader: %w", sum.Name, err)
	}
	if err := json.Unmarshal([]byte(tags), &sum.Tags); err != nil {
		return sum, fmt.Errorf("suite %s tags: %w", sum.Name, err)
	}
	sum.CreatedAt = fromMicros(created)
	return sum, nil
}

// Suites lists the stored suites without their items, by name.
func (s *DB) Suites(ctx context.Context) ([]eval.Summary, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+suiteColumns+` FROM eval_suites s ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []eval.Summary{}
	for rows.Next() {
		sum, err := scanSummary(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, sum)
	}
	return out, rows.Err()
}

// Suite reads a suite with its items in order; eval.ErrNotFound if there
// is none. One statement, so a suite replaced meanwhile is read whole,
// old or new, never mixed.
func (s *DB) Suite(ctx context.Context, name string) (*eval.Suite, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT `+suiteColumns+`, i.body FROM eval_suites s JOIN eval_items i ON i.suite_id = s.id WHERE s.name = ? ORDER BY i.seq`), name)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var su *eval.Suite
	for rows.Next() {
		var body string
		sum, err := scanSummary(rows, &body)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if su == nil {
			su = &eval.Suite{ID: sum.ID, Name: sum.Name, Grader: sum.Grader, CreatedAt: sum.CreatedAt, Items: make([]eval.Item, 0, sum.ItemCount)}
		}
		var it eval.Item
		if err := json.Unmarshal([]byte(body), &it); err != nil {
			return nil, fmt.Errorf("store: suite %s item: %w", name, err)
		}
		su.Items = append(su.Items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if su == nil {
		return nil, eval.ErrNotFound
	}
	return su, nil
}
