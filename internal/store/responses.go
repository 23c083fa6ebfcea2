package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tidegate/tidegate/internal/responses"
)

// PutResponse keeps a response until its ExpiresAt. Expired ones go in the
// same transaction: the retention needs no job of its own, and the index on
// expires_at keeps the sweep cheap when there is nothing to delete.
func (s *DB) PutResponse(ctx context.Context, r *responses.Stored) error {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now().UTC()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM responses WHERE expires_at < ?`), micros(s.now())); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO responses (id, project_id, key_id, created_at, expires_at, input, response) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			r.ID, r.ProjectID, r.KeyID, micros(r.CreatedAt), micros(r.ExpiresAt), string(r.Input), string(r.Response))
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	})
}

// Response returns a stored response that has not expired;
// responses.ErrNotFound otherwise.
func (s *DB) Response(ctx context.Context, id string) (*responses.Stored, error) {
	r := &responses.Stored{ID: id}
	var created, expires int64
	var input, resp string
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT project_id, key_id, created_at, expires_at, input, response FROM responses WHERE id = ? AND expires_at >= ?`),
		id, micros(s.now())).Scan(&r.ProjectID, &r.KeyID, &created, &expires, &input, &resp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, responses.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	r.CreatedAt, r.ExpiresAt, r.Input, r.Response = fromMicros(created), fromMicros(expires), []byte(input), []byte(resp)
	return r, nil
}

// DeleteResponse deletes a stored response; responses.ErrNotFound if there
// is none (or it expired).
func (s *DB) DeleteResponse(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM responses WHERE id = ? AND expires_at >= ?`), id, micros(s.now()))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return responses.ErrNotFound
	}
	return nil
}
