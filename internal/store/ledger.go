package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tidegate/tidegate/internal/ledger"
)

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// insertUsage writes records once; fresh reports whether any was new.
func (s *DB) insertUsage(ctx context.Context, tx *sql.Tx, records []ledger.Entry) (fresh bool, err error) {
	for _, u := range records {
		if u.CreatedAt.IsZero() {
			u.CreatedAt = s.now()
		}
		res, err := s.txExec(ctx, tx, sqlInsertUsage,
			u.RequestID, u.Attempt, micros(u.CreatedAt), u.KeyID, u.ProjectID, u.Provider, u.Model,
			u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.CacheWriteTokens, u.ReasoningTokens, u.Cost, u.Currency,
			b2i(u.Priced), b2i(u.Estimated), u.Status, u.Latency.Microseconds(), u.PriceRef,
			u.ClientRequestID, u.Images, u.Flags, u.Purpose)
		if err != nil {
			return false, fmt.Errorf("store: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			fresh = true
		}
	}
	return fresh, nil
}

// RecordUsage writes records outside any reservation (a key without budgets).
func (s *DB) RecordUsage(ctx context.Context, records []ledger.Entry) error {
	return s.write(ctx, true, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.insertUsage(ctx, tx, records)
		return err
	})
}

// Group-by dimensions of usage reports.
var reportColumns = map[string]string{
	"key":      "key_id",
	"project":  "project_id",
	"model":    "model",
	"provider": "provider",
	"purpose":  "purpose", // "" traffic, eval, eval_judge
}

// UsageReport sums the ledger between from and to (to exclusive), grouped by
// key, project, model, provider or day (UTC), per currency.
func (s *DB) UsageReport(ctx context.Context, groupBy string, from, to time.Time) ([]ledger.ReportRow, error) {
	col, ok := reportColumns[groupBy]
	if groupBy == "day" {
		// Day number since the epoch, turned into a date below.
		col, ok = "(created_at / 86400000000)", true
	}
	if !ok {
		return nil, fmt.Errorf("store: cannot group by %q", groupBy)
	}
	if to.IsZero() {
		to = s.now().Add(time.Hour)
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT CAST(`+col+` AS TEXT), currency, COUNT(DISTINCT request_id), SUM(prompt_tokens), SUM(completion_tokens),
		SUM(cached_tokens), SUM(cost), SUM(1 - priced), SUM(estimated)
		FROM usage_ledger WHERE created_at >= ? AND created_at < ? GROUP BY `+col+`, currency ORDER BY 1, 2`), micros(from), micros(to))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []ledger.ReportRow
	for rows.Next() {
		var r ledger.ReportRow
		if err := rows.Scan(&r.Group, &r.Currency, &r.Requests, &r.PromptTokens, &r.CompletionTokens, &r.CachedTokens, &r.Cost, &r.Unpriced, &r.Estimated); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if groupBy == "day" {
			var day int64
			fmt.Sscan(r.Group, &day)
			r.Group = time.Unix(day*86400, 0).UTC().Format("2006-01-02")
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// LedgerTotals sums the whole ledger, for checks and tests.
func (s *DB) LedgerTotals(ctx context.Context) (records, prompt, completion, cost int64, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), COALESCE(SUM(cost),0) FROM usage_ledger`).
		Scan(&records, &prompt, &completion, &cost)
	return
}

// UsageByClientRequestID finds the records labelled with a client's request
// id, oldest first: a client's id is searchable, never a key (several
// requests may carry the same one).
func (s *DB) UsageByClientRequestID(ctx context.Context, clientID string) ([]ledger.Entry, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT request_id, client_request_id, attempt, created_at, key_id, project_id, provider, model,
		prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, images, usage_flags, cost, currency,
		priced, estimated, status, latency_us, price_ref
		FROM usage_ledger WHERE client_request_id = ? ORDER BY created_at, request_id, attempt`), clientID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() {
		var e ledger.Entry
		var created, latency, priced, estimated int64
		if err := rows.Scan(&e.RequestID, &e.ClientRequestID, &e.Attempt, &created, &e.KeyID, &e.ProjectID, &e.Provider, &e.Model,
			&e.PromptTokens, &e.CompletionTokens, &e.CachedTokens, &e.CacheWriteTokens, &e.ReasoningTokens, &e.Images, &e.Flags, &e.Cost, &e.Currency,
			&priced, &estimated, &e.Status, &latency, &e.PriceRef); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		e.CreatedAt, e.Latency, e.Priced, e.Estimated = fromMicros(created), time.Duration(latency)*time.Microsecond, priced == 1, estimated == 1
		out = append(out, e)
	}
	return out, rows.Err()
}
