package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/ids"
)

// CreateRun stores a new run of a stored suite, status running, no lease.
func (s *DB) CreateRun(ctx context.Context, r *eval.Run) error {
	if r.ID == "" {
		r.ID = ids.New("evr")
	}
	r.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	r.Status = eval.RunRunning
	models, err := json.Marshal(r.Models)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.q(`SELECT id, items FROM eval_suites WHERE name = ?`), r.Suite).Scan(&r.SuiteID, &r.Items)
		if errors.Is(err, sql.ErrNoRows) {
			return eval.ErrNotFound
		} else if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO eval_runs (id, suite, suite_id, models, concurrency, origin, status, error, items, lease_owner, lease_until, created_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, '', 0, ?, 0)`),
			r.ID, r.Suite, r.SuiteID, string(models), r.Concurrency, r.Origin, r.Status, r.Items, micros(r.CreatedAt))
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	})
}

const runColumns = `id, suite, suite_id, models, concurrency, origin, status, error, items, created_at, finished_at`

func scanRun(row interface{ Scan(...any) error }) (eval.Run, error) {
	var r eval.Run
	var models string
	var created, finished int64
	if err := row.Scan(&r.ID, &r.Suite, &r.SuiteID, &models, &r.Concurrency, &r.Origin, &r.Status, &r.Error, &r.Items, &created, &finished); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(models), &r.Models); err != nil {
		return r, fmt.Errorf("run %s models: %w", r.ID, err)
	}
	r.CreatedAt, r.FinishedAt = fromMicros(created), fromMicros(finished)
	return r, nil
}

// EvalRun reads a run; eval.ErrRunNotFound if there is none.
func (s *DB) EvalRun(ctx context.Context, id string) (*eval.Run, error) {
	r, err := scanRun(s.rdb.QueryRowContext(ctx, s.q(`SELECT `+runColumns+` FROM eval_runs WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, eval.ErrRunNotFound
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &r, nil
}

func (s *DB) listRuns(ctx context.Context, where string, args ...any) ([]eval.Run, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT `+runColumns+` FROM eval_runs WHERE `+where+` ORDER BY created_at DESC, id DESC`), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []eval.Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// EvalRuns lists a suite's runs, newest first.
func (s *DB) EvalRuns(ctx context.Context, suite string) ([]eval.Run, error) {
	return s.listRuns(ctx, `suite = ?`, suite)
}

// UnfinishedRuns lists the runs still running that were started from
// origin, for the server to resume on start.
func (s *DB) UnfinishedRuns(ctx context.Context, origin string) ([]eval.Run, error) {
	return s.listRuns(ctx, `status = ? AND origin = ?`, eval.RunRunning, origin)
}

// LeaseRun takes or renews the lease on a running run for owner until
// now+d: one process works a run at a time. eval.ErrLeased when another
// owner's lease has not expired; eval.ErrRunNotFound when there is no
// running run of that id.
func (s *DB) LeaseRun(ctx context.Context, id, owner string, d time.Duration) error {
	now := s.now()
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE eval_runs SET lease_owner = ?, lease_until = ? WHERE id = ? AND status = ? AND (lease_owner = ? OR lease_until < ?)`),
		owner, micros(now.Add(d)), id, eval.RunRunning, owner, micros(now))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	r, err := s.EvalRun(ctx, id)
	if err != nil {
		return err
	}
	if r.Status != eval.RunRunning {
		return fmt.Errorf("%w: run %s is %s", eval.ErrRunNotFound, id, r.Status)
	}
	return eval.ErrLeased
}

// FinishRun ends a run as done or failed and frees its lease; only the
// lease's owner can.
func (s *DB) FinishRun(ctx context.Context, id, owner, status, msg string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE eval_runs SET status = ?, error = ?, finished_at = ?, lease_owner = '', lease_until = 0 WHERE id = ? AND status = ? AND lease_owner = ?`),
		status, msg, micros(s.now()), id, eval.RunRunning, owner)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return eval.ErrLeased
	}
	return nil
}

// SaveResult writes an item×model result once: a second write of the same
// key is dropped, and fresh says which happened.
func (s *DB) SaveResult(ctx context.Context, r *eval.RunResult) (fresh bool, err error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO eval_results (run_id, item_id, model, request_id, judge_label, score, answer, reason, error, latency_us, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, item_id, model) DO NOTHING`),
		r.RunID, r.ItemID, r.Model, r.RequestID, r.JudgeLabel, r.Score, r.Answer, r.Reason, r.Error, r.Latency.Microseconds(), micros(r.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// resultCosts reads a result's costs from the ledger: the candidate's
// request and the judge's, summed over their attempts.
const resultCosts = `COALESCE((SELECT SUM(l.cost) FROM usage_ledger l WHERE l.request_id = r.request_id AND r.request_id <> ''), 0),
	COALESCE((SELECT SUM(l.cost) FROM usage_ledger l WHERE l.client_request_id = r.judge_label AND r.judge_label <> ''), 0),
	COALESCE((SELECT MAX(l.currency) FROM usage_ledger l WHERE l.request_id = r.request_id AND r.request_id <> ''), '')`

// RunResults reads a run's results, by item then model, with their costs
// from the ledger.
func (s *DB) RunResults(ctx context.Context, runID string) ([]eval.RunResult, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT r.run_id, r.item_id, r.model, r.request_id, r.judge_label, r.score, r.answer, r.reason, r.error, r.latency_us, r.created_at, `+resultCosts+`
		FROM eval_results r WHERE r.run_id = ? ORDER BY r.item_id, r.model`), runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []eval.RunResult{}
	for rows.Next() {
		var r eval.RunResult
		var latency, created int64
		if err := rows.Scan(&r.RunID, &r.ItemID, &r.Model, &r.RequestID, &r.JudgeLabel, &r.Score, &r.Answer, &r.Reason, &r.Error, &latency, &created,
			&r.CostMicros, &r.JudgeCostMicros, &r.Currency); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		r.Latency, r.CreatedAt = time.Duration(latency)*time.Microsecond, fromMicros(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// EvalResults returns, for the latest done run of a suite, each item as
// each model answered it, with the item's messages and tags; none when the
// suite has no done run.
func (s *DB) EvalResults(ctx context.Context, suite string) ([]eval.ItemResult, error) {
	var runID string
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT id FROM eval_runs WHERE suite = ? AND status = ? ORDER BY finished_at DESC, id DESC LIMIT 1`), suite, eval.RunDone).Scan(&runID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT r.item_id, r.model, r.score, r.latency_us, i.body, `+resultCosts+`
		FROM eval_results r JOIN eval_runs u ON u.id = r.run_id JOIN eval_items i ON i.suite_id = u.suite_id AND i.id = r.item_id
		WHERE r.run_id = ? ORDER BY i.seq, r.model`), runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []eval.ItemResult
	for rows.Next() {
		ir := eval.ItemResult{Suite: suite, RunID: runID}
		var latency, judgeCost int64
		var body string
		if err := rows.Scan(&ir.ItemID, &ir.Model, &ir.Score, &latency, &body, &ir.CostMicros, &judgeCost, &ir.Currency); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		var it eval.Item
		if err := json.Unmarshal([]byte(body), &it); err != nil {
			return nil, fmt.Errorf("store: suite %s item %s: %w", suite, ir.ItemID, err)
		}
		ir.Messages, ir.Tags, ir.Latency = it.Messages, it.Tags, time.Duration(latency)*time.Microsecond
		out = append(out, ir)
	}
	return out, rows.Err()
}
