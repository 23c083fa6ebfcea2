package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/batch"
)

// PutFile records a file, or replaces the record of the same id (a
// finalizing batch may write its output again after a crash).
func (s *DB) PutFile(ctx context.Context, f *batch.File) error {
	if f.CreatedAt.IsZero() {
		f.CreatedAt = s.now().UTC()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO files (id, project_id, key_id, purpose, filename, bytes, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET bytes = excluded.bytes, status = excluded.status`),
		f.ID, f.ProjectID, f.KeyID, f.Purpose, f.Filename, f.Bytes, f.Status, micros(f.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

const fileColumns = `id, project_id, key_id, purpose, filename, bytes, status, created_at`

func scanFile(sc interface{ Scan(...any) error }) (*batch.File, error) {
	var f batch.File
	var created int64
	if err := sc.Scan(&f.ID, &f.ProjectID, &f.KeyID, &f.Purpose, &f.Filename, &f.Bytes, &f.Status, &created); err != nil {
		return nil, err
	}
	f.CreatedAt = fromMicros(created)
	return &f, nil
}

// File returns a file's record; batch.ErrNotFound when there is none.
func (s *DB) File(ctx context.Context, id string) (*batch.File, error) {
	f, err := scanFile(s.rdb.QueryRowContext(ctx, s.q(`SELECT `+fileColumns+` FROM files WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, batch.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return f, nil
}

// DeleteFile removes a file's record; batch.ErrNotFound when there is none.
func (s *DB) DeleteFile(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM files WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return batch.ErrNotFound
	}
	return nil
}

// pageWhere adds the project and cursor conditions of a list: newest
// first, after the cursor's record.
func pageWhere(table string, q batch.ListQuery) (string, []any) {
	var conds []string
	var args []any
	if !q.All {
		conds, args = append(conds, "project_id = ?"), append(args, q.ProjectID)
	}
	if q.Purpose != "" {
		conds, args = append(conds, "purpose = ?"), append(args, q.Purpose)
	}
	if q.After != "" {
		conds = append(conds, `(created_at < (SELECT created_at FROM `+table+` WHERE id = ?)
			OR (created_at = (SELECT created_at FROM `+table+` WHERE id = ?) AND id < ?))`)
		args = append(args, q.After, q.After, q.After)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	return where + " ORDER BY created_at DESC, id DESC LIMIT ?", append(args, q.Limit)
}

// Files lists files, newest first.
func (s *DB) Files(ctx context.Context, q batch.ListQuery) ([]batch.File, error) {
	where, args := pageWhere("files", q)
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT `+fileColumns+` FROM files`+where), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []batch.File
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, *f)
	}
	return out, rows.Err()
}

// CreateBatch records a new batch.
func (s *DB) CreateBatch(ctx context.Context, b *batch.Batch) error {
	models, _ := json.Marshal(nonNil(b.Models))
	meta, _ := json.Marshal(b.Metadata)
	errs, _ := json.Marshal(nonNil(b.Errors))
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO batches (id, project_id, key_id, models, endpoint, input_file_id, output_file_id, error_file_id,
		completion_window, metadata, status, errors, created_at, in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, '', '', ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0, ?)`),
		b.ID, b.ProjectID, b.KeyID, string(models), b.Endpoint, b.InputFileID, b.CompletionWindow, string(meta), string(b.Status), string(errs),
		micros(b.CreatedAt), micros(b.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

const batchColumns = `id, project_id, key_id, models, endpoint, input_file_id, output_file_id, error_file_id, completion_window, metadata, status, errors,
	created_at, in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at, expires_at`

func scanBatch(sc interface{ Scan(...any) error }) (*batch.Batch, error) {
	var b batch.Batch
	var models, meta, errs, status string
	var t [9]int64
	if err := sc.Scan(&b.ID, &b.ProjectID, &b.KeyID, &models, &b.Endpoint, &b.InputFileID, &b.OutputFileID, &b.ErrorFileID,
		&b.CompletionWindow, &meta, &status, &errs, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], &t[7], &t[8]); err != nil {
		return nil, err
	}
	b.Status = batch.Status(status)
	_ = json.Unmarshal([]byte(models), &b.Models)
	_ = json.Unmarshal([]byte(meta), &b.Metadata)
	_ = json.Unmarshal([]byte(errs), &b.Errors)
	for i, p := range []*time.Time{&b.CreatedAt, &b.InProgressAt, &b.FinalizingAt, &b.CompletedAt, &b.FailedAt, &b.ExpiredAt, &b.CancellingAt, &b.CancelledAt, &b.ExpiresAt} {
		*p = fromMicros(t[i])
	}
	return &b, nil
}

// Batch returns a batch with its request counts; batch.ErrNotFound when
// there is none.
func (s *DB) Batch(ctx context.Context, id string) (*batch.Batch, error) {
	b, err := scanBatch(s.rdb.QueryRowContext(ctx, s.q(`SELECT `+batchColumns+` FROM batches WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, batch.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if b.Counts, err = s.itemCounts(ctx, id); err != nil {
		return nil, err
	}
	return b, nil
}

// itemCounts counts a batch's items by state and outcome.
func (s *DB) itemCounts(ctx context.Context, id string) (batch.Counts, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT state, CASE WHEN status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END, COUNT(*)
		FROM batch_items WHERE batch_id = ? GROUP BY state, CASE WHEN status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END`), id)
	if err != nil {
		return batch.Counts{}, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var c batch.Counts
	for rows.Next() {
		var state string
		var ok int
		var n int64
		if err := rows.Scan(&state, &ok, &n); err != nil {
			return batch.Counts{}, fmt.Errorf("store: %w", err)
		}
		c.Total += n
		switch {
		case state == batch.ItemPending:
			c.Pending += n
		case state == batch.ItemRunning:
			c.Running += n
		case ok == 1:
			c.Completed += n
		default:
			c.Failed += n
		}
	}
	return c, rows.Err()
}

func (s *DB) batchesWithCounts(ctx context.Context, query string, args ...any) ([]batch.Batch, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var out []batch.Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, *b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for i := range out {
		if out[i].Counts, err = s.itemCounts(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Batches lists batches, newest first, with their counts.
func (s *DB) Batches(ctx context.Context, q batch.ListQuery) ([]batch.Batch, error) {
	where, args := pageWhere("batches", q)
	return s.batchesWithCounts(ctx, `SELECT `+batchColumns+` FROM batches`+where, args...)
}

// OpenBatches lists the batches not yet in a final status, oldest first.
func (s *DB) OpenBatches(ctx context.Context) ([]batch.Batch, error) {
	return s.batchesWithCounts(ctx, `SELECT `+batchColumns+` FROM batches WHERE status IN (?, ?, ?, ?) ORDER BY created_at, id`,
		string(batch.Validating), string(batch.InProgress), string(batch.Finalizing), string(batch.Cancelling))
}

// statusColumn is the time column each status stamps.
var statusColumn = map[batch.Status]string{
	batch.InProgress: "in_progress_at", batch.Finalizing: "finalizing_at", batch.Completed: "completed_at",
	batch.Failed: "failed_at", batch.Expired: "expired_at", batch.Cancelling: "cancelling_at", batch.Cancelled: "cancelled_at",
}

// UpdateBatch moves a batch to u.Status, stamping its time, if it is in
// one of from; it reports whether it did (another process, or a cancel,
// may have moved it first).
func (s *DB) UpdateBatch(ctx context.Context, id string, from []batch.Status, u batch.Update) (bool, error) {
	col, ok := statusColumn[u.Status]
	if !ok || len(from) == 0 {
		return false, fmt.Errorf("store: no move to %q", u.Status)
	}
	set := []string{"status = ?", col + " = ?"}
	args := []any{string(u.Status), micros(u.At)}
	if u.OutputFileID != "" {
		set, args = append(set, "output_file_id = ?"), append(args, u.OutputFileID)
	}
	if u.ErrorFileID != "" {
		set, args = append(set, "error_file_id = ?"), append(args, u.ErrorFileID)
	}
	if u.Errors != nil {
		errs, _ := json.Marshal(u.Errors)
		set, args = append(set, "errors = ?"), append(args, string(errs))
	}
	args = append(args, id)
	marks := make([]string, len(from))
	for i, f := range from {
		marks[i] = "?"
		args = append(args, string(f))
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE batches SET `+strings.Join(set, ", ")+` WHERE id = ? AND status IN (`+strings.Join(marks, ", ")+`)`), args...)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// AddItems records a batch's items, pending; items already recorded (a
// retry after a crash) are left as they are.
func (s *DB) AddItems(ctx context.Context, items []batch.Item) error {
	const chunk = 500
	for start := 0; start < len(items); start += chunk {
		part := items[start:min(start+chunk, len(items))]
		err := s.tx(ctx, func(tx *sql.Tx) error {
			for _, it := range part {
				if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO batch_items (batch_id, line, custom_id, body, state, attempts, request_id, status_code, response, err_code, err_message)
					VALUES (?, ?, ?, ?, ?, 0, '', 0, '', '', '') ON CONFLICT (batch_id, line) DO NOTHING`),
					it.BatchID, it.Line, it.CustomID, string(it.Body), batch.ItemPending); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}

const itemColumns = `batch_id, line, custom_id, body, state, attempts, request_id, status_code, response, err_code, err_message`

func scanItem(sc interface{ Scan(...any) error }) (*batch.Item, error) {
	var it batch.Item
	var body, resp string
	var r batch.Result
	if err := sc.Scan(&it.BatchID, &it.Line, &it.CustomID, &body, &it.State, &it.Attempts, &r.RequestID, &r.StatusCode, &resp, &r.ErrCode, &r.ErrMessage); err != nil {
		return nil, err
	}
	it.Body = json.RawMessage(body)
	if it.State == batch.ItemDone {
		if resp != "" {
			r.Body = json.RawMessage(resp)
		}
		it.Result = &r
	}
	return &it, nil
}

// Item returns one item; batch.ErrNotFound when there is none.
func (s *DB) Item(ctx context.Context, batchID string, line int) (*batch.Item, error) {
	it, err := scanItem(s.rdb.QueryRowContext(ctx, s.q(`SELECT `+itemColumns+` FROM batch_items WHERE batch_id = ? AND line = ?`), batchID, line))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, batch.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return it, nil
}

// Items lists a batch's items after a line, in line order.
func (s *DB) Items(ctx context.Context, batchID string, afterLine, limit int) ([]batch.Item, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT `+itemColumns+` FROM batch_items WHERE batch_id = ? AND line > ? ORDER BY line LIMIT ?`), batchID, afterLine, limit)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []batch.Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, *it)
	}
	return out, rows.Err()
}

// StartItem marks an item running (again, after a crash) and counts the
// attempt; false when it is done already.
func (s *DB) StartItem(ctx context.Context, batchID string, line int) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE batch_items SET state = ?, attempts = attempts + 1 WHERE batch_id = ? AND line = ? AND state IN (?, ?)`),
		batch.ItemRunning, batchID, line, batch.ItemPending, batch.ItemRunning)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishItem writes an item's result, once: false when it was written
// already (the item ran twice across a crash; the first result stands).
func (s *DB) FinishItem(ctx context.Context, batchID string, line int, r batch.Result) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE batch_items SET state = ?, request_id = ?, status_code = ?, response = ?, err_code = ?, err_message = ?
		WHERE batch_id = ? AND line = ? AND state <> ?`),
		batch.ItemDone, r.RequestID, r.StatusCode, string(r.Body), r.ErrCode, r.ErrMessage, batchID, line, batch.ItemDone)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// EndPendingItems answers every item not yet started with an error (the
// batch expired or was cancelled); running items finish on their own.
func (s *DB) EndPendingItems(ctx context.Context, batchID, code, message string) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE batch_items SET state = ?, err_code = ?, err_message = ? WHERE batch_id = ? AND state = ?`),
		batch.ItemDone, code, message, batchID, batch.ItemPending)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return res.RowsAffected()
}

// EndRunningItems answers every item still marked running with an error:
// the executor calls it only once no attempt can still be live (past the
// batch's end by twice the item timeout), so such an item lost its job (a
// process killed on its last attempt, a result that failed to write).
func (s *DB) EndRunningItems(ctx context.Context, batchID, code, message string) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE batch_items SET state = ?, err_code = ?, err_message = ? WHERE batch_id = ? AND state = ?`),
		batch.ItemDone, code, message, batchID, batch.ItemRunning)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return res.RowsAffected()
}

// RequeueItem puts a running item back to pending (its call is to be
// retried), so a cancel or an expiry can still end it.
func (s *DB) RequeueItem(ctx context.Context, batchID string, line int) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE batch_items SET state = ? WHERE batch_id = ? AND line = ? AND state = ?`),
		batch.ItemPending, batchID, line, batch.ItemRunning)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
