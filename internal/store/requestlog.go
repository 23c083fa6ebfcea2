package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/reqlog"
)

// requestLogChunk is how many rows one INSERT statement carries: a batch
// pays the statement's round trip once per chunk, not per row.
const requestLogChunk = 32

// insertRequestLog is the INSERT of n rows.
func insertRequestLog(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO request_log (id, received_at, endpoint, model, route, key_id, status, verdict, total_us, record, client_request_id) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT (id, received_at) DO NOTHING`)
	return b.String()
}

// InsertRequestLogs writes a batch of rows in one transaction. The log is
// diagnostic: its commit need not reach the disk before the next one does.
func (s *DB) InsertRequestLogs(ctx context.Context, rows []reqlog.Row) error {
	return s.writeLocked(ctx, false, hourlyLocks(rows), func(ctx context.Context, tx *sql.Tx) error {
		// This may run again (see writeOp): it consumes a copy of rows.
		for rest := rows; len(rest) > 0; {
			// Full chunks in one statement, the rest a row at a time: both
			// statements are prepared when the store opens.
			n := requestLogChunk
			if len(rest) < n {
				n = 1
			}
			chunk := rest[:n]
			rest = rest[n:]
			args := make([]any, 0, 11*n)
			for _, r := range chunk {
				args = append(args, r.ID, micros(r.ReceivedAt), r.Endpoint, r.Model, r.Route,
					r.KeyID, r.Status, r.Verdict, r.Total.Microseconds(), r.Record, r.ClientID)
			}
			if _, err := s.txExec(ctx, tx, insertRequestLog(n), args...); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		return s.rollUpRequestLogs(ctx, tx, rows)
	})
}

// RequestLog returns the newest logged record of a request id, else the
// newest labelled with that client id. The gateway's id goes first: a
// client cannot shadow another request by sending its id as a label.
func (s *DB) RequestLog(ctx context.Context, id string) (string, error) {
	if id == "" {
		return "", reqlog.ErrNotFound // every unlabelled row has an empty label
	}
	for _, col := range []string{"id", "client_request_id"} {
		var rec string
		err := s.rdb.QueryRowContext(ctx, s.q(`SELECT record FROM request_log WHERE `+col+` = ? ORDER BY received_at DESC LIMIT 1`), id).Scan(&rec)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("store: %w", err)
		}
		return rec, nil
	}
	return "", reqlog.ErrNotFound
}

// PruneRequestLog deletes the rows received before a time; it returns how many.
func (s *DB) PruneRequestLog(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM request_log WHERE received_at < ?`), micros(before))
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	if err := s.pruneHourly(ctx, before.UnixMicro()); err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// PruneRequestLogRows keeps the newest keep rows and deletes the rest; it
// returns how many went.
func (s *DB) PruneRequestLogRows(ctx context.Context, keep int64) (int64, error) {
	var cutoff int64
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT received_at FROM request_log ORDER BY received_at DESC LIMIT 1 OFFSET ?`), keep).Scan(&cutoff)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil // fewer rows than that
	}
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM request_log WHERE received_at <= ?`), cutoff)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	if err := s.pruneHourly(ctx, cutoff+1); err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
