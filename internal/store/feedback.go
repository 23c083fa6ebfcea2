package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tidegate/tidegate/internal/ability"
)

// RecordFeedback records a verdict on the request id (the gateway's own id,
// else the newest with that client label) among the traffic the caller may
// see: its project's, or, for a key without a project, its own. A second
// verdict on a request replaces the first.
func (s *DB) RecordFeedback(ctx context.Context, keyID, projectID, id string, score float64) (ability.Feedback, error) {
	if id == "" {
		return ability.Feedback{}, ability.ErrNoRequest
	}
	if math.IsNaN(score) || score < 0 || score > 1 {
		return ability.Feedback{}, fmt.Errorf("store: feedback score %v outside [0, 1]", score)
	}
	scope, who := "key_id = ?", keyID
	if projectID != "" {
		scope, who = "project_id = ?", projectID
	}
	fb := ability.Feedback{KeyID: keyID, ProjectID: projectID, Score: score, CreatedAt: s.now()}
	found := false
	// The gateway's id first: a client label cannot shadow another request.
	for _, col := range []string{"request_id", "client_request_id"} {
		var provider, model string
		err := s.queryRow(ctx, `SELECT request_id, provider, model FROM usage_ledger
			WHERE `+col+` = ? AND `+scope+` AND purpose = '' AND status <> 'rejected'
			ORDER BY created_at DESC, attempt DESC LIMIT 1`, id, who).Scan(&fb.RequestID, &provider, &model)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return ability.Feedback{}, fmt.Errorf("store: %w", err)
		}
		fb.Target, found = provider+"/"+model, true
		break
	}
	if !found {
		return ability.Feedback{}, ability.ErrNoRequest
	}
	err := s.queryRow(ctx, `SELECT model FROM request_log WHERE id = ? ORDER BY received_at DESC LIMIT 1`, fb.RequestID).Scan(&fb.Route)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return ability.Feedback{}, fmt.Errorf("store: %w", err)
	}
	err = s.write(ctx, true, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `INSERT INTO feedback (request_id, key_id, project_id, route, target, score, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (request_id) DO UPDATE SET score = excluded.score, created_at = excluded.created_at`,
			fb.RequestID, keyID, projectID, fb.Route, fb.Target, score, micros(fb.CreatedAt))
		return err
	})
	if err != nil {
		return ability.Feedback{}, fmt.Errorf("store: %w", err)
	}
	return fb, nil
}

// FeedbackSince lists the verdicts recorded at or after since, oldest first.
func (s *DB) FeedbackSince(ctx context.Context, since time.Time) ([]ability.Feedback, error) {
	rows, err := s.query(ctx, `SELECT request_id, key_id, project_id, route, target, score, created_at
		FROM feedback WHERE created_at >= ? ORDER BY created_at, request_id`, micros(since))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []ability.Feedback
	for rows.Next() {
		var f ability.Feedback
		var at int64
		if err := rows.Scan(&f.RequestID, &f.KeyID, &f.ProjectID, &f.Route, &f.Target, &f.Score, &at); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		f.CreatedAt = fromMicros(at)
		out = append(out, f)
	}
	return out, rows.Err()
}
