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

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store"
)

// testEvalRuns: a run is a row with a lease one owner holds at a time; an
// item×model result is written once however many write it; costs are read
// from the ledger rows of the results' requests.
func testEvalRuns(t *testing.T, s *store.DB) {
	ctx := context.Background()
	if err := s.CreateRun(ctx, &eval.Run{Suite: "missing", Models: []string{"a/b"}}); !errors.Is(err, eval.ErrNotFound) {
		t.Errorf("a run of a missing suite: %v, want ErrNotFound", err)
	}
	su := suite(t, "tickets", "v1", 3)
	if err := s.CreateSuite(ctx, su, false); err != nil {
		t.Fatal(err)
	}
	run := &eval.Run{Suite: "tickets", Models: []string{"sim/fast", "sim/slow"}, Concurrency: 4, Origin: eval.OriginAPI}
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	got, err := s.EvalRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(run, got); d != "" {
		t.Errorf("EvalRun (-created +read):\n%s", d)
	}
	if got.Items != 3 || got.SuiteID != su.ID || got.Status != eval.RunRunning {
		t.Errorf("run = %+v, want 3 items of suite %s, running", got, su.ID)
	}
	if _, err := s.EvalRun(ctx, "evr_none"); !errors.Is(err, eval.ErrRunNotFound) {
		t.Errorf("EvalRun(missing) = %v, want ErrRunNotFound", err)
	}

	// The lease: one owner at a time; an expired lease is taken over.
	if err := s.LeaseRun(ctx, run.ID, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.LeaseRun(ctx, run.ID, "b", time.Minute); !errors.Is(err, eval.ErrLeased) {
		t.Errorf("a second owner took a held lease: %v", err)
	}
	if err := s.LeaseRun(ctx, run.ID, "a", -time.Second); err != nil { // renewed, already expired
		t.Fatal(err)
	}
	if err := s.LeaseRun(ctx, run.ID, "b", time.Minute); err != nil {
		t.Errorf("an expired lease was not taken over: %v", err)
	}
	if err := s.FinishRun(ctx, run.ID, "a", eval.RunDone, ""); !errors.Is(err, eval.ErrLeased) {
		t.Errorf("a former owner finished the run: %v", err)
	}
	unfinished, err := s.UnfinishedRuns(ctx, eval.OriginAPI)
	if err != nil || len(unfinished) != 1 || unfinished[0].ID != run.ID {
		t.Errorf("UnfinishedRuns = %v, %v; want the run", unfinished, err)
	}

	// Eight writers race for each item×model: one row each.
	var fresh atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, it := range su.Items {
				for _, m := range run.Models {
					ok, err := s.SaveResult(ctx, &eval.RunResult{RunID: run.ID, ItemID: it.ID, Model: m, RequestID: fmt.Sprintf("req-%s-%s-%d", it.ID, m, w),
						Score: 0.5, Answer: "a", Latency: 1500 * time.Microsecond})
					if err != nil {
						t.Error(err)
					}
					if ok {
						fresh.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if fresh.Load() != 6 {
		t.Errorf("%d fresh writes of 6 item×model results", fresh.Load())
	}
	results, err := s.RunResults(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 6 {
		t.Fatalf("%d results, want 6", len(results))
	}
	// The ledger bills the winning writers' requests: two attempts on one.
	var entries []ledger.Entry
	for i, r := range results {
		entries = append(entries, ledger.Entry{RequestID: r.RequestID, Attempt: 1, Cost: int64(1000 * (i + 1)), Currency: "CNY", Status: "ok", Purpose: eval.PurposeEval})
	}
	entries = append(entries, ledger.Entry{RequestID: results[0].RequestID, Attempt: 2, Cost: 7, Currency: "CNY", Status: "ok", Purpose: eval.PurposeEval},
		ledger.Entry{RequestID: "traffic", Attempt: 1, Cost: 99, Currency: "CNY", Status: "ok"})
	if err := s.RecordUsage(ctx, entries); err != nil {
		t.Fatal(err)
	}
	results, err = s.RunResults(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var costs []int64
	for _, r := range results {
		costs = append(costs, r.CostMicros)
		if r.Currency != "CNY" || r.Latency != 1500*time.Microsecond {
			t.Errorf("result %+v: want CNY, 1.5ms", r)
		}
	}
	if d := cmp.Diff([]int64{1007, 2000, 3000, 4000, 5000, 6000}, costs); d != "" {
		t.Errorf("costs from the ledger (-want +got):\n%s", d)
	}
	report, err := s.UsageReport(ctx, "purpose", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	byPurpose := map[string]int64{}
	for _, r := range report {
		byPurpose[r.Group] = r.Cost
	}
	if d := cmp.Diff(map[string]int64{"": 99, eval.PurposeEval: 21007}, byPurpose); d != "" {
		t.Errorf("usage by purpose (-want +got):\n%s", d)
	}

	// EvalResults reads the latest done run only.
	if got, err := s.EvalResults(ctx, "tickets"); err != nil || len(got) != 0 {
		t.Errorf("EvalResults before any done run = %v, %v", got, err)
	}
	if err := s.FinishRun(ctx, run.ID, "b", eval.RunDone, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.LeaseRun(ctx, run.ID, "b", time.Minute); !errors.Is(err, eval.ErrRunNotFound) {
		t.Errorf("a done run was leased again: %v", err)
	}
	items, err := s.EvalResults(ctx, "tickets")
	if err != nil {
		t.Fatal(err)
	}
	var want []eval.ItemResult
	for i, r := range results {
		it := su.Items[i/2]
		want = append(want, eval.ItemResult{Suite: "tickets", RunID: run.ID, ItemID: it.ID, Messages: it.Messages, Tags: it.Tags,
			Model: r.Model, Score: 0.5, CostMicros: costs[i], Currency: "CNY", Latency: 1500 * time.Microsecond})
	}
	if d := cmp.Diff(want, items, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("EvalResults (-want +got):\n%s", d)
	}
	runs, err := s.EvalRuns(ctx, "tickets")
	if err != nil || len(runs) != 1 || runs[0].Status != eval.RunDone || runs[0].FinishedAt.IsZero() {
		t.Errorf("EvalRuns = %+v, %v; want the one done run", runs, err)
	}
}
