package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/console/query"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/store"
)

// testConsoleQueries: the console's searches filter, scope to a project's
// keys, page by keyset without gaps or repeats (rows sharing a time
// included), count verdicts, and sum spend per price entry.
func testConsoleQueries(t *testing.T, s *store.DB) {
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var rows []reqlog.Row
	for i := range 30 {
		key := []string{"k1", "k2", ""}[i%3]
		verdict, status := "ok", 200
		if i%5 == 0 {
			verdict, status = "upstream_error", 502
		}
		rows = append(rows, reqlog.Row{ID: fmt.Sprintf("req_%02d", i), ReceivedAt: base.Add(time.Duration(i/2) * time.Second), // pairs share a time
			Endpoint: "/v1/chat/completions", Model: []string{"chat", "embed"}[i%2], Route: "sim/fast", KeyID: key,
			Status: status, Verdict: verdict, Total: time.Millisecond, Record: "{}"})
	}
	if err := s.InsertRequestLogs(ctx, rows); err != nil {
		t.Fatal(err)
	}
	ids := func(f query.RequestFilter) []string {
		t.Helper()
		got, err := s.ConsoleRequests(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, r := range got {
			out = append(out, r.ID)
		}
		return out
	}
	// Keyset paging walks every row once, newest first.
	var walked []string
	f := query.RequestFilter{Limit: 7}
	for range 10 {
		page, err := s.ConsoleRequests(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			walked = append(walked, r.ID)
		}
		if len(page) < f.Limit {
			break
		}
		last := page[len(page)-1]
		f.BeforeAt, f.BeforeID = last.ReceivedAt, last.ID
	}
	var want []string
	for i := 29; i >= 0; i-- {
		want = append(want, fmt.Sprintf("req_%02d", i))
	}
	if diff := cmp.Diff(want, walked); diff != "" {
		t.Errorf("keyset walk (-want +got):\n%s", diff)
	}
	tests := []struct {
		name string
		f    query.RequestFilter
		want []string
	}{
		{"verdict and status", query.RequestFilter{Verdict: "upstream_error", Status: 502}, []string{"req_25", "req_20", "req_15", "req_10", "req_05", "req_00"}},
		{"model and key", query.RequestFilter{Model: "embed", KeyID: "k2"}, []string{"req_25", "req_19", "req_13", "req_07", "req_01"}},
		{"project scope", query.RequestFilter{Keys: []string{"k1"}, From: base.Add(10 * time.Second)}, []string{"req_27", "req_24", "req_21"}},
		{"project scope, two keys, merged", query.RequestFilter{Keys: []string{"k1", "k2"}, From: base.Add(10 * time.Second)},
			[]string{"req_28", "req_27", "req_25", "req_24", "req_22", "req_21"}},
		{"project scope, a page", query.RequestFilter{Keys: []string{"k2", "k1"}, Limit: 3, BeforeAt: base.Add(12 * time.Second), BeforeID: "req_25"},
			[]string{"req_24", "req_22", "req_21"}},
		{"scope with no keys matches nothing", query.RequestFilter{Keys: []string{}}, []string{}},
		{"scope and another key", query.RequestFilter{Keys: []string{"k1"}, KeyID: "k2"}, []string{}},
		{"time range", query.RequestFilter{From: base.Add(2 * time.Second), To: base.Add(3 * time.Second)}, []string{"req_05", "req_04"}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, ids(tc.f)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	tr, err := s.ConsoleTraffic(ctx, []string{"k1", "k2"}, base.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Rows 10..29 of keys k1 and k2 (i%3 != 2): 13; errors (i%5 == 0) among them: 10, 15, 25.
	if diff := cmp.Diff(query.Traffic{Requests: 13, Errors: 3, Verdicts: map[string]int64{"ok": 10, "upstream_error": 3}}, tr); diff != "" {
		t.Errorf("traffic (-want +got):\n%s", diff)
	}

	// From hours before: the hourly counts answer, scoped or not.
	for _, tc := range []struct {
		keys []string
		from time.Time
		want query.Traffic
	}{
		{nil, base.Add(-30 * time.Minute), query.Traffic{Requests: 30, Errors: 6, Verdicts: map[string]int64{"ok": 24, "upstream_error": 6}}},
		{nil, base.Add(-2 * time.Hour), query.Traffic{Requests: 30, Errors: 6, Verdicts: map[string]int64{"ok": 24, "upstream_error": 6}}},
		{[]string{"k1"}, base.Add(-time.Hour), query.Traffic{Requests: 10, Errors: 2, Verdicts: map[string]int64{"ok": 8, "upstream_error": 2}}},
		{[]string{}, base.Add(-time.Hour), query.Traffic{Verdicts: map[string]int64{}}},
	} {
		got, err := s.ConsoleTraffic(ctx, tc.keys, tc.from)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("traffic of %v since %s (-want +got):\n%s", tc.keys, tc.from.Format(time.TimeOnly), diff)
		}
	}
	defer func() {
		// Pruning the log prunes its hourly counts.
		if _, err := s.PruneRequestLog(ctx, base.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ConsoleTraffic(ctx, nil, base.Add(-time.Hour)); got.Requests != 0 {
			t.Errorf("pruned hours still counted: %+v", got)
		}
	}()

	entry := func(id, key, project, model, cur, ref string, cost int64) ledger.Entry {
		return ledger.Entry{RequestID: id, Attempt: 1, CreatedAt: base, KeyID: key, ProjectID: project, Provider: "sim", Model: model,
			PromptTokens: 10, CompletionTokens: 5, Cost: cost, Currency: cur, Priced: true, Status: "ok", PriceRef: ref}
	}
	if err := s.RecordUsage(ctx, []ledger.Entry{
		entry("u1", "k1", "p1", "fast", "USD", "sim/fast@2026-01-01", 100),
		entry("u2", "k1", "p1", "fast", "USD", "sim/fast@2026-10-01", 200),
		entry("u3", "k2", "p1", "fast", "CNY", "sim/fast@2026-10-01", 300),
		entry("u4", "k3", "p2", "fast", "USD", "sim/fast@2026-10-01", 400),
	}); err != nil {
		t.Fatal(err)
	}
	spend, err := s.ConsoleSpend(ctx, query.SpendFilter{GroupBy: "key", ProjectID: "p1", From: base.Add(-time.Hour), To: base.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	wantSpend := []query.SpendRow{
		{Group: "k1", Currency: "USD", PriceRef: "sim/fast@2026-01-01", Requests: 1, PromptTokens: 10, CompletionTokens: 5, Cost: 100},
		{Group: "k1", Currency: "USD", PriceRef: "sim/fast@2026-10-01", Requests: 1, PromptTokens: 10, CompletionTokens: 5, Cost: 200},
		{Group: "k2", Currency: "CNY", PriceRef: "sim/fast@2026-10-01", Requests: 1, PromptTokens: 10, CompletionTokens: 5, Cost: 300},
	}
	if diff := cmp.Diff(wantSpend, spend); diff != "" {
		t.Errorf("a project's spend (-want +got):\n%s", diff)
	}
	days, err := s.ConsoleSpend(ctx, query.SpendFilter{GroupBy: "day", From: base.Add(-time.Hour), To: base.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 3 || days[0].Group != "2026-11-01" {
		t.Errorf("spend by day: %+v", days)
	}
}
