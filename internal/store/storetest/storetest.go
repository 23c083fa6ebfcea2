// Package storetest is the conformance suite every store runs (SQLite and
// PostgreSQL): the same behaviour, concurrency included, on both.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/secrets"
	"github.com/tidegate/tidegate/internal/store"
)

// Open returns a fresh, empty, migrated store for one test.
type Open func(t *testing.T) *store.DB

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	tests := map[string]func(*testing.T, *store.DB){
		"SettingOnce":         testSettingOnce,
		"Keys":                testKeys,
		"ListKeys":            testListKeys,
		"Budgets":             testBudgets,
		"KeyCache":            testKeyCache,
		"RequestLog":          testRequestLog,
		"ReserveSettle":       testReserveSettle,
		"ReserveAllOrNothing": testAllOrNothing,
		"ReserveRace":         testReserveRace,
		"ReleaseExpired":      testReleaseExpired,
		"Report":              testReport,
		"Credentials":         testCredentials,
		"EvalSuites":          testEvalSuites,
		"EvalAllOrNothing":    testEvalAllOrNothing,
		"EvalRace":            testEvalRace,
		"EvalRuns":            testEvalRuns,
		"ClientLabels":        testClientLabels,
		"SettleNeverCredits":  testSettleNeverCredits,
		"Responses":           testResponses,
		"Feedback":            testFeedback,
		"Prices":              testPrices,
		"ConsoleQueries":      testConsoleQueries,
		"Files":               testFiles,
		"Batches":             testBatches,
		"BatchLostItems":      testBatchLostItems,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { fn(t, open(t)) })
	}
}

func testSettingOnce(t *testing.T, s *store.DB) {
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, _, err := s.SettingOnce(ctx, "k", func() string { return ids.New("v") })
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}(i)
	}
	wg.Wait()
	for _, v := range got {
		if v != got[0] || v == "" {
			t.Fatalf("callers saw different values: %v", got)
		}
	}
}

func newKey(t *testing.T, s *store.DB, project string, budget *ledger.Budget) *keys.Key {
	t.Helper()
	ctx := context.Background()
	p, err := s.EnsureProject(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.New("key")
	k := &keys.Key{ID: id, Hash: "hash-" + id, Prefix: "tg-abcd", Name: "app", ProjectID: p.ID, Models: []string{"chat"},
		RPM: 60, TPM: 1000, MaxStreams: 2, ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Microsecond).UTC(), Budget: budget}
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	return k
}

func testKeys(t *testing.T, s *store.DB) {
	ctx := context.Background()
	k := newKey(t, s, "crm", &ledger.Budget{Currency: "CNY", Amount: 1_000_000, Period: ledger.PeriodMonth})
	p2, _ := s.EnsureProject(ctx, "crm")
	if p2.ID != k.ProjectID {
		t.Error("EnsureProject made a second project of one name")
	}
	got, err := s.KeyByHash(ctx, k.Hash)
	if err != nil {
		t.Fatal(err)
	}
	want := *k
	want.ProjectName, want.Budget = "crm", nil
	if d := cmp.Diff(&want, got, cmpopts.EquateApproxTime(time.Millisecond)); d != "" {
		t.Errorf("KeyByHash (-want +got):\n%s", d)
	}
	if _, err := s.KeyByHash(ctx, "' OR 1=1 --"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	byID, err := s.KeyByID(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&want, byID, cmpopts.EquateApproxTime(time.Millisecond)); d != "" {
		t.Errorf("KeyByID (-want +got):\n%s", d)
	}
	if _, err := s.KeyByID(ctx, "key_nope"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	list, err := s.ListKeys(ctx)
	if err != nil || len(list) != 1 || list[0].Budget == nil || list[0].Budget.Amount != 1_000_000 {
		t.Fatalf("ListKeys = %+v, %v", list, err)
	}
	if err := s.RevokeKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = s.KeyByHash(ctx, k.Hash)
	first := got.RevokedAt
	if first.IsZero() {
		t.Fatal("revoked key shows no revocation")
	}
	_ = s.RevokeKey(ctx, k.ID)
	got, _ = s.KeyByHash(ctx, k.Hash)
	if !got.RevokedAt.Equal(first) {
		t.Error("a second revocation moved the time")
	}
	if byID, _ = s.KeyByID(ctx, k.ID); byID == nil || !byID.RevokedAt.Equal(first) {
		t.Errorf("KeyByID after revoking: %+v", byID)
	}
	if err := s.RevokeKey(ctx, "key_nope"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
}

// testKeyCache: cached keys and cached misses both give way to a change on
// the very next lookup.
func testKeyCache(t *testing.T, s *store.DB) {
	ctx := context.Background()
	counted := &countingFinder{DB: s}
	c := keys.NewCache(counted)
	k := newKey(t, s, "crm", nil)
	for range 3 {
		got, err := c.KeyByHash(ctx, k.Hash)
		if err != nil || got.ID != k.ID || !got.RevokedAt.IsZero() {
			t.Fatalf("cached lookup = %+v, %v", got, err)
		}
	}
	if n := counted.lookups.Load(); n != 1 {
		t.Errorf("three lookups of an unchanged key reached the store %d times, want 1", n)
	}
	if err := s.RevokeKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := c.KeyByHash(ctx, k.Hash); err != nil || got.RevokedAt.IsZero() {
		t.Errorf("after revocation the cache still serves the live key: %+v, %v", got, err)
	}

	id := ids.New("key")
	if _, err := c.KeyByHash(ctx, "hash-"+id); !errors.Is(err, keys.ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	p, _ := s.EnsureProject(ctx, "crm")
	if err := s.CreateKey(ctx, &keys.Key{ID: id, Hash: "hash-" + id, Prefix: "tg-x", Name: "new", ProjectID: p.ID}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.KeyByHash(ctx, "hash-"+id); err != nil || got.ID != id {
		t.Errorf("a key created after a cached miss is not found: %+v, %v", got, err)
	}
}

// testRequestLog: a batch larger than one statement's chunk is written
// whole; an id logged twice reads as its newest; pruning goes by age.
func testRequestLog(t *testing.T, s *store.DB) {
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	var rows []reqlog.Row
	for i := range 70 {
		rows = append(rows, reqlog.Row{ID: fmt.Sprintf("r%d", i), ReceivedAt: base.Add(time.Duration(i) * time.Second),
			Endpoint: "/v1/chat/completions", Model: "chat", Route: "p/m", Status: 200, Verdict: "ok", Total: time.Millisecond,
			Record: fmt.Sprintf(`{"id":"r%d"}`, i)})
	}
	rows = append(rows, reqlog.Row{ID: "r5", ReceivedAt: base.Add(time.Hour), Record: `{"id":"r5","again":true}`})
	if err := s.InsertRequestLogs(ctx, rows); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r0", "r31", "r32", "r63", "r64", "r69"} {
		if got, err := s.RequestLog(ctx, id); err != nil || got != fmt.Sprintf(`{"id":"%s"}`, id) {
			t.Errorf("RequestLog(%s) = %q, %v", id, got, err)
		}
	}
	if got, _ := s.RequestLog(ctx, "r5"); got != `{"id":"r5","again":true}` {
		t.Errorf("an id logged twice reads %q, want the newest", got)
	}
	if _, err := s.RequestLog(ctx, "nope"); !errors.Is(err, reqlog.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	n, err := s.PruneRequestLog(ctx, base.Add(10*time.Second))
	if err != nil || n != 10 {
		t.Errorf("pruned %d, %v; want 10", n, err)
	}
	if _, err := s.RequestLog(ctx, "r9"); !errors.Is(err, reqlog.ErrNotFound) {
		t.Errorf("a pruned row is still there: %v", err)
	}
	// 61 rows left (r10…r69, r5 again): keep the newest 20.
	if n, err := s.PruneRequestLogRows(ctx, 20); err != nil || n != 41 {
		t.Errorf("pruned by count %d, %v; want 41", n, err)
	}
	if _, err := s.RequestLog(ctx, "r50"); !errors.Is(err, reqlog.ErrNotFound) {
		t.Errorf("r50 survived a prune to the newest 20: %v", err)
	}
	if got, err := s.RequestLog(ctx, "r51"); err != nil || got != `{"id":"r51"}` {
		t.Errorf("r51 = %q, %v", got, err)
	}
	if n, err := s.PruneRequestLogRows(ctx, 1000); err != nil || n != 0 {
		t.Errorf("pruning a short log by count: %d, %v", n, err)
	}
}

type countingFinder struct {
	*store.DB
	lookups atomic.Int64
}

func (f *countingFinder) KeyByHash(ctx context.Context, hash string) (*keys.Key, error) {
	f.lookups.Add(1)
	return f.DB.KeyByHash(ctx, hash)
}

func holds(bs []ledger.Budget, amount int64, now time.Time) []ledger.Hold {
	var out []ledger.Hold
	for _, b := range bs {
		out = append(out, ledger.Hold{BudgetID: b.ID, PeriodStart: ledger.PeriodStart(b.Period, now), Amount: amount, Soft: b.Soft})
	}
	return out
}

func window(t *testing.T, s *store.DB, h ledger.Hold) ledger.Window {
	t.Helper()
	w, err := s.BudgetWindow(context.Background(), h.BudgetID, h.PeriodStart)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func testReserveSettle(t *testing.T, s *store.DB) {
	ctx := context.Background()
	now := time.Now()
	k := newKey(t, s, "p", &ledger.Budget{Currency: "CNY", Amount: 100, Period: ledger.PeriodDay})
	bs, _ := s.Budgets(ctx, k.ID, k.ProjectID)
	r := &ledger.Reservation{Holds: holds(bs, 60, now), ExpiresAt: now.Add(time.Minute)}
	if err := s.Reserve(ctx, r); err != nil {
		t.Fatal(err)
	}
	var exceeded *ledger.BudgetExceededError
	if err := s.Reserve(ctx, &ledger.Reservation{Holds: holds(bs, 41, now), ExpiresAt: now.Add(time.Minute)}); !errors.As(err, &exceeded) {
		t.Fatalf("60 held + 41 fit a budget of 100: %v", err)
	}
	rec := []ledger.Entry{{RequestID: "req1", Attempt: 1, KeyID: k.ID, ProjectID: k.ProjectID, Provider: "p", Model: "m",
		PromptTokens: 10, CompletionTokens: 5, Cost: 35, Currency: "CNY", Priced: true, Status: "ok"}}
	if err := s.Settle(ctx, r, []int64{35}, rec); err != nil {
		t.Fatal(err)
	}
	if w := window(t, s, r.Holds[0]); w != (ledger.Window{Spent: 35}) {
		t.Errorf("after settle: %+v", w)
	}
	// Settling again (a retry after a lost answer) changes nothing.
	if err := s.Settle(ctx, r, []int64{35}, rec); err != nil {
		t.Fatal(err)
	}
	if w := window(t, s, r.Holds[0]); w != (ledger.Window{Spent: 35}) {
		t.Errorf("after a second settle: %+v", w)
	}
	n, _, completion, cost, _ := s.LedgerTotals(ctx)
	if n != 1 || completion != 5 || cost != 35 {
		t.Errorf("ledger: %d records, %d completion tokens, cost %d", n, completion, cost)
	}
	// A soft budget never rejects.
	soft := newKey(t, s, "soft", &ledger.Budget{Currency: "CNY", Amount: 1, Period: ledger.PeriodTotal, Soft: true})
	sbs, _ := s.Budgets(ctx, soft.ID, soft.ProjectID)
	if err := s.Reserve(ctx, &ledger.Reservation{Holds: holds(sbs, 1000, now), ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Errorf("soft budget rejected: %v", err)
	}
}

func testAllOrNothing(t *testing.T, s *store.DB) {
	ctx := context.Background()
	now := time.Now()
	k := newKey(t, s, "shared", &ledger.Budget{Currency: "CNY", Amount: 1000, Period: ledger.PeriodTotal})
	if err := s.SetProjectBudget(ctx, k.ProjectID, &ledger.Budget{Currency: "CNY", Amount: 50, Period: ledger.PeriodTotal}); err != nil {
		t.Fatal(err)
	}
	bs, _ := s.Budgets(ctx, k.ID, k.ProjectID)
	if len(bs) != 2 || bs[0].Scope != ledger.ScopeKey {
		t.Fatalf("budgets: %+v", bs)
	}
	hs := holds(bs, 80, now)
	var exceeded *ledger.BudgetExceededError
	if err := s.Reserve(ctx, &ledger.Reservation{Holds: hs, ExpiresAt: now.Add(time.Minute)}); !errors.As(err, &exceeded) || exceeded.BudgetID != bs[1].ID {
		t.Fatalf("want the project budget exceeded, got %v", err)
	}
	if w := window(t, s, hs[0]); w.Reserved != 0 {
		t.Errorf("the key's budget kept a hold from a failed reservation: %+v", w)
	}
}

// testReserveRace: many concurrent reservations never jointly pass a budget.
func testReserveRace(t *testing.T, s *store.DB) {
	ctx := context.Background()
	now := time.Now()
	k := newKey(t, s, "race", &ledger.Budget{Currency: "CNY", Amount: 1_000_000, Period: ledger.PeriodTotal})
	bs, _ := s.Budgets(ctx, k.ID, k.ProjectID)
	var ok, denied atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Reserve(ctx, &ledger.Reservation{Holds: holds(bs, 50_000, now), ExpiresAt: now.Add(time.Minute)})
			var exceeded *ledger.BudgetExceededError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &exceeded):
				denied.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 20 || denied.Load() != 180 {
		t.Errorf("%d reserved, %d denied; want exactly 20 and 180", ok.Load(), denied.Load())
	}
	if w := window(t, s, holds(bs, 0, now)[0]); w.Reserved != 1_000_000 {
		t.Errorf("window: %+v", w)
	}
}

func testReleaseExpired(t *testing.T, s *store.DB) {
	ctx := context.Background()
	now := time.Now()
	k := newKey(t, s, "crash", &ledger.Budget{Currency: "CNY", Amount: 100, Period: ledger.PeriodTotal})
	bs, _ := s.Budgets(ctx, k.ID, k.ProjectID)
	dead := &ledger.Reservation{Holds: holds(bs, 70, now), ExpiresAt: now.Add(-time.Second)}
	live := &ledger.Reservation{Holds: holds(bs, 20, now), ExpiresAt: now.Add(time.Hour)}
	for _, r := range []*ledger.Reservation{dead, live} {
		if err := s.Reserve(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.ReleaseExpired(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("released %d, %v", n, err)
	}
	if w := window(t, s, dead.Holds[0]); w.Reserved != 20 {
		t.Errorf("after release: %+v", w)
	}
	// The holder was only slow, not dead: its settle still spends the truth, once.
	rec := []ledger.Entry{{RequestID: "late", Attempt: 1, KeyID: k.ID, ProjectID: k.ProjectID, Cost: 30, Currency: "CNY", Status: "ok"}}
	for i := 0; i < 2; i++ {
		if err := s.Settle(ctx, dead, []int64{30}, rec); err != nil {
			t.Fatal(err)
		}
	}
	if w := window(t, s, dead.Holds[0]); w != (ledger.Window{Spent: 30, Reserved: 20}) {
		t.Errorf("late settle: %+v", w)
	}
	if open, _ := s.OpenReservations(ctx); open != 1 {
		t.Errorf("open reservations: %d", open)
	}
}

func testReport(t *testing.T, s *store.DB) {
	ctx := context.Background()
	day := time.Date(2026, 5, 21, 10, 0, 0, 0, time.UTC)
	recs := []ledger.Entry{
		{RequestID: "a", Attempt: 1, CreatedAt: day, KeyID: "k1", ProjectID: "p", Provider: "deepseek", Model: "deepseek-chat", PromptTokens: 100, CompletionTokens: 10, Cost: 120, Currency: "CNY", Priced: true, Status: "ok"},
		{RequestID: "a", Attempt: 2, CreatedAt: day, KeyID: "k1", ProjectID: "p", Provider: "qwen", Model: "qwen-plus", PromptTokens: 100, CompletionTokens: 20, Cost: 80, Currency: "CNY", Priced: true, Status: "ok"},
		{RequestID: "b", Attempt: 1, CreatedAt: day.Add(24 * time.Hour), KeyID: "k2", ProjectID: "p", Provider: "openai", Model: "gpt-4.1", PromptTokens: 5, CompletionTokens: 5, Cost: 7, Currency: "USD", Status: "ok"},
	}
	if err := s.RecordUsage(ctx, recs); err != nil {
		t.Fatal(err)
	}
	rows, err := s.UsageReport(ctx, "day", day.Add(-time.Hour), day.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.ReportRow{
		{Group: "2026-05-21", Currency: "CNY", Requests: 1, PromptTokens: 200, CompletionTokens: 30, Cost: 200},
		{Group: "2026-05-22", Currency: "USD", Requests: 1, PromptTokens: 5, CompletionTokens: 5, Cost: 7, Unpriced: 1},
	}
	if d := cmp.Diff(want, rows); d != "" {
		t.Errorf("by day (-want +got):\n%s", d)
	}
	rows, _ = s.UsageReport(ctx, "provider", day.Add(-time.Hour), day.Add(time.Hour))
	if len(rows) != 2 || rows[0].Group != "deepseek" || rows[1].Group != "qwen" {
		t.Errorf("by provider: %+v", rows)
	}
	// Every other dimension, over both days: a request's attempts count once.
	cny := func(group string, prompt, completion, cost int64) ledger.ReportRow {
		return ledger.ReportRow{Group: group, Currency: "CNY", Requests: 1, PromptTokens: prompt, CompletionTokens: completion, Cost: cost}
	}
	usd := func(group string) ledger.ReportRow {
		return ledger.ReportRow{Group: group, Currency: "USD", Requests: 1, PromptTokens: 5, CompletionTokens: 5, Cost: 7, Unpriced: 1}
	}
	for _, c := range []struct {
		groupBy string
		want    []ledger.ReportRow
	}{
		{"key", []ledger.ReportRow{cny("k1", 200, 30, 200), usd("k2")}},
		{"project", []ledger.ReportRow{cny("p", 200, 30, 200), usd("p")}},
		{"model", []ledger.ReportRow{cny("deepseek-chat", 100, 10, 120), usd("gpt-4.1"), cny("qwen-plus", 100, 20, 80)}},
	} {
		rows, err := s.UsageReport(ctx, c.groupBy, day.Add(-time.Hour), day.Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(c.want, rows); d != "" {
			t.Errorf("by %s (-want +got):\n%s", c.groupBy, d)
		}
	}
	if _, err := s.UsageReport(ctx, "1; DROP TABLE usage_ledger", day, day); err == nil {
		t.Error("an unknown group-by was accepted")
	}
}

func testCredentials(t *testing.T, s *store.DB) {
	ctx := context.Background()
	sl, err := secrets.NewSealer("a secret of some length")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*secrets.Credential{{Provider: "deepseek", Name: "main", Secret: "sk-one"}, {Provider: "deepseek", Name: "spare", Secret: "sk-two"}} {
		if err := s.AddCredential(ctx, sl, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Credentials(ctx, sl, "deepseek")
	if err != nil || len(got) != 2 || got[0].Secret != "sk-one" || got[1].Secret != "sk-two" {
		t.Fatalf("credentials = %+v, %v", got, err)
	}
	// Listed without a sealer (the admin API's list), every provider's
	// credentials come back with no secret opened.
	if err := s.AddCredential(ctx, sl, &secrets.Credential{Provider: "qwen", Name: "q", Secret: "sk-three"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Credentials(ctx, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	type listed struct{ Provider, Name, Secret string }
	var gotAll []listed
	for _, c := range all {
		gotAll = append(gotAll, listed{c.Provider, c.Name, c.Secret})
	}
	wantAll := []listed{{"deepseek", "main", ""}, {"deepseek", "spare", ""}, {"qwen", "q", ""}}
	if d := cmp.Diff(wantAll, gotAll, cmpopts.SortSlices(func(a, b listed) bool { return a.Name < b.Name })); d != "" {
		t.Errorf("all credentials, unopened (-want +got):\n%s", d)
	}
	other, _ := secrets.NewSealer("another secret entirely")
	if _, err := s.Credentials(ctx, other, "deepseek"); err == nil {
		t.Error("credentials opened with the wrong secret")
	}
	if err := s.DeleteCredential(ctx, got[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCredential(ctx, got[0].ID); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// testListKeys: newest first, each with its own budget or none.
func testListKeys(t *testing.T, s *store.DB) {
	ctx := context.Background()
	p, err := s.EnsureProject(ctx, "crm")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 21, 10, 0, 0, 0, time.UTC)
	older := &keys.Key{ID: ids.New("key"), Hash: "h-older", Prefix: "tg-aaaa", Name: "older", ProjectID: p.ID, CreatedAt: at}
	newer := &keys.Key{ID: ids.New("key"), Hash: "h-newer", Prefix: "tg-bbbb", Name: "newer", ProjectID: p.ID, CreatedAt: at.Add(time.Second),
		Budget: &ledger.Budget{Currency: "USD", Amount: 7, Period: ledger.PeriodDay}}
	for _, k := range []*keys.Key{older, newer} {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantNewer, wantOlder := *newer, *older
	wantNewer.ProjectName, wantOlder.ProjectName = "crm", "crm"
	if d := cmp.Diff([]keys.Key{wantNewer, wantOlder}, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("ListKeys (-want +got):\n%s", d)
	}
}

// testBudgets: a project's budget is replaced in place, and the budgets that
// apply to a key are its own, then its project's, no one else's.
func testBudgets(t *testing.T, s *store.DB) {
	ctx := context.Background()
	k := newKey(t, s, "acme", &ledger.Budget{Currency: "CNY", Amount: 100, Period: ledger.PeriodDay})
	newKey(t, s, "other", &ledger.Budget{Currency: "CNY", Amount: 1, Period: ledger.PeriodDay})
	first := &ledger.Budget{Currency: "USD", Amount: 5, Period: ledger.PeriodMonth}
	if err := s.SetProjectBudget(ctx, k.ProjectID, first); err != nil {
		t.Fatal(err)
	}
	replaced := &ledger.Budget{Currency: "CNY", Amount: 9, Period: ledger.PeriodTotal, Soft: true}
	if err := s.SetProjectBudget(ctx, k.ProjectID, replaced); err != nil {
		t.Fatal(err)
	}
	if replaced.ID != first.ID {
		t.Errorf("replacing a project's budget made a new one: %s, was %s", replaced.ID, first.ID)
	}
	got, err := s.Budgets(ctx, k.ID, k.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Budget{
		{ID: k.Budget.ID, Scope: ledger.ScopeKey, ScopeID: k.ID, Currency: "CNY", Amount: 100, Period: ledger.PeriodDay},
		{ID: first.ID, Scope: ledger.ScopeProject, ScopeID: k.ProjectID, Currency: "CNY", Amount: 9, Period: ledger.PeriodTotal, Soft: true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Budgets (-want +got):\n%s", d)
	}
}
