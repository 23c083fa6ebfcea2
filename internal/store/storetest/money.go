package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/store"
)

// testClientLabels: a client's request id labels records, it never keys
// them. Records sharing a label are all kept and all found by it; the
// request log finds a request by its own id before any label, so a client
// sending another request's id as its label cannot shadow that request.
func testClientLabels(t *testing.T, s *store.DB) {
	ctx := context.Background()
	at := time.Date(2026, 5, 21, 10, 0, 0, 0, time.UTC)
	var recs []ledger.Entry
	for i, id := range []string{"req_a", "req_b", "req_c"} {
		recs = append(recs, ledger.Entry{RequestID: id, ClientRequestID: "same", Attempt: 1, CreatedAt: at.Add(time.Duration(i) * time.Second),
			KeyID: "k", ProjectID: "p", Provider: "p", Model: "m", PromptTokens: 3, Cost: 3, Currency: "CNY", Priced: true, Status: "ok", Images: int64(i)})
	}
	if err := s.RecordUsage(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := s.UsageByClientRequestID(ctx, "same")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(recs, got); d != "" {
		t.Errorf("records labelled %q (-want +got):\n%s", "same", d)
	}

	rows := []reqlog.Row{
		{ID: "req_x", ClientID: "mine", ReceivedAt: at, Record: `{"id":"req_x"}`},
		{ID: "req_y", ClientID: "mine", ReceivedAt: at.Add(time.Second), Record: `{"id":"req_y"}`},
		{ID: "req_z", ClientID: "req_x", ReceivedAt: at.Add(2 * time.Second), Record: `{"id":"req_z"}`},
		{ID: "req_w", ReceivedAt: at.Add(3 * time.Second), Record: `{"id":"req_w"}`},
	}
	if err := s.InsertRequestLogs(ctx, rows); err != nil {
		t.Fatal(err)
	}
	for lookup, want := range map[string]string{"req_x": `{"id":"req_x"}`, "mine": `{"id":"req_y"}`, "req_z": `{"id":"req_z"}`} {
		if got, err := s.RequestLog(ctx, lookup); err != nil || got != want {
			t.Errorf("RequestLog(%q) = %q, %v; want %s", lookup, got, err, want)
		}
	}
	if _, err := s.RequestLog(ctx, ""); !errors.Is(err, reqlog.ErrNotFound) {
		t.Errorf("the empty label found a request: %v", err)
	}
}

// testSettleNeverCredits: a settlement spends what it is told, or nothing:
// a negative amount (an upstream's impossible usage) never lowers what a
// budget has spent. A refused hold reports the window it did not fit.
func testSettleNeverCredits(t *testing.T, s *store.DB) {
	ctx := context.Background()
	now := time.Now()
	k := newKey(t, s, "credit", &ledger.Budget{Currency: "CNY", Amount: 100, Period: ledger.PeriodMonth})
	bs, _ := s.Budgets(ctx, k.ID, k.ProjectID)
	for i, actual := range []int64{40, -30} {
		r := &ledger.Reservation{Holds: holds(bs, 10, now), ExpiresAt: now.Add(time.Minute)}
		if err := s.Reserve(ctx, r); err != nil {
			t.Fatal(err)
		}
		rec := []ledger.Entry{{RequestID: "credit-" + string(rune('a'+i)), Attempt: 1, KeyID: k.ID, ProjectID: k.ProjectID, Currency: "CNY", Status: "ok"}}
		if err := s.Settle(ctx, r, []int64{actual}, rec); err != nil {
			t.Fatal(err)
		}
	}
	if w := window(t, s, holds(bs, 0, now)[0]); w != (ledger.Window{Spent: 40}) {
		t.Errorf("after spending 40 and settling -30: %+v, want spent 40", w)
	}
	held := &ledger.Reservation{Holds: holds(bs, 25, now), ExpiresAt: now.Add(time.Minute)}
	if err := s.Reserve(ctx, held); err != nil {
		t.Fatal(err)
	}
	var exceeded *ledger.BudgetExceededError
	if err := s.Reserve(ctx, &ledger.Reservation{Holds: holds(bs, 50, now), ExpiresAt: now.Add(time.Minute)}); !errors.As(err, &exceeded) {
		t.Fatalf("50 into 35 left: %v", err)
	}
	want := ledger.BudgetExceededError{BudgetID: bs[0].ID, Amount: 100, Spent: 40, Reserved: 25, Want: 50}
	if d := cmp.Diff(want, *exceeded); d != "" {
		t.Errorf("refusal (-want +got):\n%s", d)
	}
}
