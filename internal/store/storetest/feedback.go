package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/store"
)

// testFeedback: a verdict is recorded only on traffic the caller's project
// (or, without one, its key) owns, found by the gateway's id or the
// client's label, on the target that served (not a cascade's rejected
// answer), with the route from the request log; the latest verdict wins.
func testFeedback(t *testing.T, s *store.DB) {
	ctx := context.Background()
	at := time.Date(2026, 5, 21, 10, 0, 0, 0, time.UTC)
	row := func(id, label, key, project, model, status, purpose string, attempt int) ledger.Entry {
		return ledger.Entry{RequestID: id, ClientRequestID: label, Attempt: attempt, CreatedAt: at.Add(time.Duration(attempt) * time.Millisecond),
			KeyID: key, ProjectID: project, Provider: "sim", Model: model, Currency: "CNY", Priced: true, Status: status, Purpose: purpose}
	}
	err := s.RecordUsage(ctx, []ledger.Entry{
		row("req_1", "mine", "k1", "p1", "nano", "rejected", "", 1),
		row("req_1", "mine", "k1", "p1", "max", "ok", "", 2),
		row("req_2", "", "k2", "p1", "mini", "ok", "", 1),
		row("req_3", "", "k3", "p2", "nano", "ok", "", 1),
		row("req_4", "", "k4", "", "nano", "ok", "", 1),
		row("req_5", "", "k1", "p1", "nano", "ok", "eval", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InsertRequestLogs(ctx, []reqlog.Row{{ID: "req_1", Model: "tickets", ReceivedAt: at, Record: "{}"}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name         string
		key, project string
		id           string
		score        float64
		want         ability.Feedback
		err          error
	}{
		{"by id: the served target, the logged route", "k1", "p1", "req_1", 0.25,
			ability.Feedback{RequestID: "req_1", Route: "tickets", Target: "sim/max", Score: 0.25}, nil},
		{"by label, replacing the first", "k1", "p1", "mine", 1,
			ability.Feedback{RequestID: "req_1", Route: "tickets", Target: "sim/max", Score: 1}, nil},
		{"another key of the project", "k1", "p1", "req_2", 0,
			ability.Feedback{RequestID: "req_2", Target: "sim/mini"}, nil},
		{"another project's request", "k1", "p1", "req_3", 1, ability.Feedback{}, ability.ErrNoRequest},
		{"a key without a project sees its own", "k4", "", "req_4", 0.5,
			ability.Feedback{RequestID: "req_4", Target: "sim/nano", Score: 0.5}, nil},
		{"a key without a project sees no other", "k9", "", "req_4", 0.5, ability.Feedback{}, ability.ErrNoRequest},
		{"eval spend is not traffic", "k1", "p1", "req_5", 1, ability.Feedback{}, ability.ErrNoRequest},
		{"unknown", "k1", "p1", "nope", 1, ability.Feedback{}, ability.ErrNoRequest},
		{"empty id", "k1", "p1", "", 1, ability.Feedback{}, ability.ErrNoRequest},
	}
	ignore := cmpopts.IgnoreFields(ability.Feedback{}, "KeyID", "ProjectID", "CreatedAt")
	for _, c := range cases {
		got, err := s.RecordFeedback(ctx, c.key, c.project, c.id, c.score)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.err)
		}
		if d := cmp.Diff(c.want, got, ignore); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, d)
		}
	}
	for _, score := range []float64{-0.1, 1.5} {
		if _, err := s.RecordFeedback(ctx, "k1", "p1", "req_1", score); err == nil {
			t.Errorf("score %v recorded", score)
		}
	}
	all, err := s.FeedbackSince(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var scores []float64
	for _, f := range all {
		scores = append(scores, f.Score)
	}
	if d := cmp.Diff([]float64{1, 0, 0.5}, scores); d != "" {
		t.Errorf("stored verdicts (-want +got):\n%s", d)
	}
}
