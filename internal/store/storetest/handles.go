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

	"github.com/tidegate/tidegate/internal/console/query"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/store"
)

// Handles opens n stores on one fresh database, as n replicas would: n
// pools for a store several processes share (PostgreSQL), the one store n
// times for one a single process owns (SQLite).
type Handles func(t *testing.T, n int) []*store.DB

// RunHandles runs the cases that need several handles on one database.
func RunHandles(t *testing.T, open Handles) {
	t.Run("HotRowsAcrossHandles", func(t *testing.T) { testHotRowsAcrossHandles(t, open(t, 3)) })
	t.Run("BudgetAcrossHandles", func(t *testing.T) { testBudgetAcrossHandles(t, open(t, 3)) })
}

// testHotRowsAcrossHandles: replicas reserving and settling on keys that
// share a project budget, logging requests into shared hourly counts, and
// releasing abandoned holds, all at once, take the same rows in different
// orders. Every operation must still succeed (PostgreSQL fails a deadlock's
// victim: the store must not pass that on) and the sums come out exact.
func testHotRowsAcrossHandles(t *testing.T, dbs []*store.DB) {
	ctx := context.Background()
	now := time.Now()
	s := dbs[0]
	const nkeys, workers, rounds = 4, 8, 10
	const hold, cost = 1000, 600
	var budgets [nkeys][]ledger.Budget
	for i := range nkeys {
		k := newKey(t, s, "shared", &ledger.Budget{Currency: "CNY", Amount: 1_000_000_000, Period: ledger.PeriodTotal})
		if i == 0 {
			if err := s.SetProjectBudget(ctx, k.ProjectID, &ledger.Budget{Currency: "CNY", Amount: 1_000_000_000, Period: ledger.PeriodTotal}); err != nil {
				t.Fatal(err)
			}
		}
		bs, err := s.Budgets(ctx, k.ID, k.ProjectID)
		if err != nil || len(bs) != 2 {
			t.Fatalf("budgets of key %d: %+v, %v", i, bs, err)
		}
		budgets[i] = bs
	}
	verdicts := []string{"ok", "client_error", "upstream_error"}
	var settled [nkeys]atomic.Int64
	var mu sync.Mutex
	logged := query.Traffic{Verdicts: map[string]int64{}}
	var wg sync.WaitGroup
	done := make(chan struct{})
	var reconcilers sync.WaitGroup
	for _, db := range dbs {
		reconcilers.Go(func() {
			for {
				if _, err := db.ReleaseExpired(ctx, time.Now()); err != nil {
					t.Errorf("ReleaseExpired: %v", err)
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					n := (w + i) % nkeys
					// Every fourth hold is abandoned (its process died):
					// expired at once, left to the reconcilers.
					abandoned := i%4 == 3
					res := &ledger.Reservation{Holds: holds(budgets[n], hold, now), ExpiresAt: now.Add(time.Hour)}
					if abandoned {
						res.ExpiresAt = now.Add(-time.Second)
					}
					if err := db.Reserve(ctx, res); err != nil {
						t.Errorf("Reserve: %v", err)
						continue
					}
					if !abandoned {
						id := fmt.Sprintf("%s-%d", res.ID, i)
						rec := []ledger.Entry{{RequestID: id, Attempt: 1, KeyID: budgets[n][0].ScopeID, Cost: cost, Currency: "CNY", Status: "ok"}}
						if err := db.Settle(ctx, res, []int64{cost, cost}, rec); err != nil {
							t.Errorf("Settle: %v", err)
						} else {
							settled[n].Add(1)
						}
					}
					var rows []reqlog.Row
					for j := range 3 {
						rows = append(rows, reqlog.Row{ID: fmt.Sprintf("%s-log%d", res.ID, j), ReceivedAt: now,
							KeyID: budgets[(n+j)%nkeys][0].ScopeID, Verdict: verdicts[(w+j)%len(verdicts)], Status: 200, Record: "{}"})
					}
					if err := db.InsertRequestLogs(ctx, rows); err != nil {
						t.Errorf("InsertRequestLogs: %v", err)
						continue
					}
					mu.Lock()
					for _, r := range rows {
						logged.Requests++
						logged.Verdicts[r.Verdict]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(done)
	reconcilers.Wait()
	if _, err := s.ReleaseExpired(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	var total int64
	for n := range nkeys {
		total += settled[n].Load()
		if got, want := window(t, s, holds(budgets[n], 0, now)[0]), (ledger.Window{Spent: cost * settled[n].Load()}); got != want {
			t.Errorf("key %d's window: %+v, want %+v", n, got, want)
		}
	}
	if got, want := window(t, s, holds(budgets[0], 0, now)[1]), (ledger.Window{Spent: cost * total}); got != want {
		t.Errorf("the project's window: %+v, want %+v", got, want)
	}
	if open, err := s.OpenReservations(ctx); err != nil || open != 0 {
		t.Errorf("%d reservations left open (%v)", open, err)
	}
	// From the start of the hour: read from the hourly counts alone.
	counted, err := s.ConsoleTraffic(ctx, nil, time.Unix(now.Unix()/3600*3600, 0))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(logged, counted); d != "" {
		t.Errorf("hourly counts of every key (-logged +counted):\n%s", d)
	}
}

// testBudgetAcrossHandles: a budget holds exactly when its reservations
// come through several handles at once.
func testBudgetAcrossHandles(t *testing.T, dbs []*store.DB) {
	ctx := context.Background()
	now := time.Now()
	k := newKey(t, dbs[0], "across", &ledger.Budget{Currency: "CNY", Amount: 1_000_000, Period: ledger.PeriodTotal})
	bs, err := dbs[0].Budgets(ctx, k.ID, k.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	var ok, denied atomic.Int64
	var wg sync.WaitGroup
	for i := range 120 {
		wg.Go(func() {
			err := dbs[i%len(dbs)].Reserve(ctx, &ledger.Reservation{Holds: holds(bs, 50_000, now), ExpiresAt: now.Add(time.Minute)})
			var exceeded *ledger.BudgetExceededError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &exceeded):
				denied.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 20 || denied.Load() != 100 {
		t.Errorf("%d reserved, %d denied; want exactly 20 and 100", ok.Load(), denied.Load())
	}
	if w := window(t, dbs[0], holds(bs, 0, now)[0]); w.Reserved != 1_000_000 {
		t.Errorf("window: %+v", w)
	}
}
