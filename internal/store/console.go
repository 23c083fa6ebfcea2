package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/console/query"
	"github.com/tidegate/tidegate/internal/reqlog"
)

// requestScope adds a console filter's conditions to where and args.
func requestScope(f query.RequestFilter) (string, []any) {
	var conds []string
	var args []any
	if f.Keys != nil {
		if len(f.Keys) == 0 {
			return "1 = 0", nil
		}
		conds = append(conds, "key_id IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.Keys)), ", ")+")")
		for _, k := range f.Keys {
			args = append(args, k)
		}
	}
	add := func(cond string, v any) {
		conds = append(conds, cond)
		args = append(args, v)
	}
	if f.KeyID != "" {
		add("key_id = ?", f.KeyID)
	}
	if f.Model != "" {
		add("model = ?", f.Model)
	}
	if f.Status != 0 {
		add("status = ?", f.Status)
	}
	if f.Verdict != "" {
		add("verdict = ?", f.Verdict)
	}
	if !f.From.IsZero() {
		add("received_at >= ?", micros(f.From))
	}
	if !f.To.IsZero() {
		add("received_at < ?", micros(f.To))
	}
	if !f.BeforeAt.IsZero() {
		at := micros(f.BeforeAt)
		// The first bound is the index's range; the second breaks ties.
		conds = append(conds, "received_at <= ? AND (received_at < ? OR id < ?)")
		args = append(args, at, at, f.BeforeID)
	}
	if len(conds) == 0 {
		return "1 = 1", nil
	}
	return strings.Join(conds, " AND "), args
}

const requestColumns = `id, client_request_id, received_at, endpoint, model, route, key_id, status, verdict, total_us`

// ConsoleRequests pages the request log newest first, by keyset: each
// filter walks an index in time order and stops at the page's end. A
// project's scope (several keys) reads each key's newest page from its own
// index and merges them, rather than sort every row of the project.
func (s *DB) ConsoleRequests(ctx context.Context, f query.RequestFilter) ([]query.RequestRow, error) {
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	order := ` ORDER BY received_at DESC, id DESC LIMIT ` + fmt.Sprint(limit)
	var stmt string
	var args []any
	if len(f.Keys) > 0 && f.KeyID == "" {
		var parts []string
		for _, k := range f.Keys {
			one := f
			one.Keys, one.KeyID = nil, k
			where, a := requestScope(one)
			parts = append(parts, `SELECT * FROM (SELECT `+requestColumns+` FROM request_log WHERE `+where+order+`) AS k`+fmt.Sprint(len(parts)))
			args = append(args, a...)
		}
		stmt = `SELECT ` + requestColumns + ` FROM (` + strings.Join(parts, " UNION ALL ") + `) AS scoped` + order
	} else {
		where, a := requestScope(f)
		stmt, args = `SELECT `+requestColumns+` FROM request_log WHERE `+where+order, a
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(stmt), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []query.RequestRow
	for rows.Next() {
		var r query.RequestRow
		var at, total int64
		if err := rows.Scan(&r.ID, &r.ClientID, &at, &r.Endpoint, &r.Model, &r.Route, &r.KeyID, &r.Status, &r.Verdict, &total); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		r.ReceivedAt, r.Total = fromMicros(at), time.Duration(total)*time.Microsecond
		out = append(out, r)
	}
	return out, rows.Err()
}

// ConsoleTraffic counts the requests since from, per verdict: the hours
// after from's own hour from the hourly counts, the rest of from's hour
// from the log itself (the covering index on received_at, verdict, status,
// key_id), so a month costs the same as an hour.
func (s *DB) ConsoleTraffic(ctx context.Context, keys []string, from time.Time) (query.Traffic, error) {
	t := query.Traffic{Verdicts: map[string]int64{}}
	if keys != nil && len(keys) == 0 {
		return t, nil
	}
	fromUS := micros(from)
	nextHour := hourOf(fromUS) + 3600
	if fromUS%3_600_000_000 == 0 {
		nextHour = fromUS / 1e6 // from is an hour's start: all of it from the counts
	}
	where, args := requestScope(query.RequestFilter{Keys: keys, From: from, To: time.Unix(nextHour, 0)})
	hw, hargs := "key_id = ? AND hour >= ?", []any{allKeys, nextHour}
	if keys != nil {
		hw = "key_id IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", ") + ") AND hour >= ?"
		hargs = nil
		for _, k := range keys {
			hargs = append(hargs, k)
		}
		hargs = append(hargs, nextHour)
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT verdict, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)
		FROM request_log WHERE `+where+` GROUP BY verdict
		UNION ALL SELECT verdict, SUM(requests), SUM(errors) FROM request_log_hourly WHERE `+hw+` GROUP BY verdict`), append(args, hargs...)...)
	if err != nil {
		return t, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		var n, errs int64
		if err := rows.Scan(&v, &n, &errs); err != nil {
			return t, fmt.Errorf("store: %w", err)
		}
		t.Verdicts[v] += n
		t.Requests += n
		t.Errors += errs
	}
	return t, rows.Err()
}

// ConsoleSpend sums the ledger per group, currency and the price entry
// that billed it.
func (s *DB) ConsoleSpend(ctx context.Context, f query.SpendFilter) ([]query.SpendRow, error) {
	col, ok := reportColumns[f.GroupBy]
	if f.GroupBy == "day" {
		col, ok = "(created_at / 86400000000)", true
	}
	if !ok {
		return nil, fmt.Errorf("store: cannot group by %q", f.GroupBy)
	}
	where, args := "created_at >= ? AND created_at < ?", []any{micros(f.From), micros(f.To)}
	if f.ProjectID != "" {
		where, args = "project_id = ? AND "+where, append([]any{f.ProjectID}, args...)
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT CAST(`+col+` AS TEXT), currency, price_ref, COUNT(DISTINCT request_id),
		SUM(prompt_tokens), SUM(completion_tokens), SUM(cost)
		FROM usage_ledger WHERE `+where+` GROUP BY `+col+`, currency, price_ref ORDER BY 1, 2, 3`), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []query.SpendRow
	for rows.Next() {
		var r query.SpendRow
		if err := rows.Scan(&r.Group, &r.Currency, &r.PriceRef, &r.Requests, &r.PromptTokens, &r.CompletionTokens, &r.Cost); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if f.GroupBy == "day" {
			var day int64
			fmt.Sscan(r.Group, &day)
			r.Group = time.Unix(day*86400, 0).UTC().Format("2006-01-02")
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// allKeys is the hourly counts' key for every key together.
const allKeys = "*"

// hourOf is the start of a time's UTC hour, in unix seconds.
func hourOf(us int64) int64 { return us / 1e6 / 3600 * 3600 }

type hourlyKey struct {
	hour         int64
	key, verdict string
}

// rollUpRequestLogs adds a batch to the hourly counts, in the batch's own
// transaction. A row the log already held (ON CONFLICT DO NOTHING) would
// be counted twice; the log writes each request once.
func (s *DB) rollUpRequestLogs(ctx context.Context, tx *sql.Tx, rows []reqlog.Row) error {
	counts := hourlyCounts(rows)
	// In the global lock order (see locks.go), which takeLocks kept already
	// on PostgreSQL: sorted, two replicas' upserts cannot deadlock.
	for _, k := range slices.SortedFunc(maps.Keys(counts), compareHourly) {
		c := counts[k]
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO request_log_hourly (hour, key_id, verdict, requests, errors) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (hour, key_id, verdict) DO UPDATE SET requests = request_log_hourly.requests + excluded.requests,
			errors = request_log_hourly.errors + excluded.errors`), k.hour, k.key, k.verdict, c[0], c[1]); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}

// hourlyCounts is what rows add to each hourly row: requests, errors.
func hourlyCounts(rows []reqlog.Row) map[hourlyKey][2]int64 {
	counts := map[hourlyKey][2]int64{}
	for _, r := range rows {
		hour := hourOf(micros(r.ReceivedAt))
		// Each row counts for its key and for every key together ("*",
		// never a key's id), which the master's overview reads.
		for _, k := range []hourlyKey{{hour, r.KeyID, r.Verdict}, {hour, allKeys, r.Verdict}} {
			c := counts[k]
			c[0]++
			if r.Status >= 400 {
				c[1]++
			}
			counts[k] = c
		}
	}
	return counts
}

// hourlyKeys are the hourly rows that rows change.
func hourlyKeys(rows []reqlog.Row) []hourlyKey {
	return slices.Collect(maps.Keys(hourlyCounts(rows)))
}

func compareHourly(a, b hourlyKey) int {
	return cmp.Or(cmp.Compare(a.hour, b.hour), strings.Compare(a.key, b.key), strings.Compare(a.verdict, b.verdict))
}

// pruneHourly drops the hours that ended by the log's cutoff (unix µs). An
// hour the cutoff falls inside keeps its counts until the next prune.
func (s *DB) pruneHourly(ctx context.Context, beforeUS int64) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM request_log_hourly WHERE hour + 3600 <= ?`), beforeUS/1e6); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
