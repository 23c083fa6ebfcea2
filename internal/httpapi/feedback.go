package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/provider"
)

// FeedbackRecorder keeps clients' verdicts on their answers (the store).
type FeedbackRecorder interface {
	// RecordFeedback records a verdict on a request the key's project (or,
	// without one, the key) made; ability.ErrNoRequest when it sees none.
	RecordFeedback(ctx context.Context, keyID, projectID, id string, score float64) (ability.Feedback, error)
}

// feedback serves POST /v1/feedback {"request_id", "score"}: a user's
// verdict on an answer, 0 (wrong) to 1 (right), on the caller's own traffic.
func (s *Server) feedback(w http.ResponseWriter, r *http.Request) {
	fr, ok := s.Store.(FeedbackRecorder)
	if !ok {
		s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Message: "feedback needs a store"})
		return
	}
	var body struct {
		RequestID string   `json:"request_id"`
		Score     *float64 `json:"score"`
	}
	if err := s.decodeStrict(w, r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	invalid := func(param, msg string) {
		s.writeError(w, r, &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_value", Param: param, Message: msg})
	}
	switch {
	case ids.ClientLabel(body.RequestID) == "": // ours pass too; nothing else was ever kept
		invalid("request_id", fmt.Sprintf("request_id is tidegate's request id or your x-request-id label (1 to %d of a-z A-Z 0-9 - _ . :)", ids.MaxLabel))
		return
	case body.Score == nil || math.IsNaN(*body.Score) || *body.Score < 0 || *body.Score > 1:
		invalid("score", "score is a number from 0 (wrong) to 1 (right)")
		return
	}
	var keyID, projectID string
	if k := principalFrom(r).key; k != nil {
		keyID, projectID = k.ID, k.ProjectID
	}
	// The verdict names its route from the request log, written in batches:
	// a verdict sent right after its answer must find the record there.
	if l, ok := s.Requests.(interface{ Flush(context.Context) }); ok {
		l.Flush(r.Context())
	}
	fb, err := fr.RecordFeedback(r.Context(), keyID, projectID, body.RequestID, *body.Score)
	switch {
	case errors.Is(err, ability.ErrNoRequest):
		s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "request_not_found", Param: "request_id",
			Message: fmt.Sprintf("no request %q of yours was found", body.RequestID)})
		return
	case err != nil:
		s.writeError(w, r, &provider.Error{Kind: provider.KindInternal, Message: "store error", Err: err})
		return
	}
	if s.Feedback != nil {
		s.Feedback(fb)
	}
	writeJSON(w, http.StatusCreated, fb)
}
