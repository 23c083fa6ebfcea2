package ledger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// openProject opens a fresh SQLite store holding one project.
func openProject(t *testing.T) (*store.DB, keys.Project) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := st.EnsureProject(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	return st, p
}

// TestLocalHoldsRace: in-memory holds never let concurrent requests jointly
// pass a budget, and settled spending reaches the store.
func TestLocalHoldsRace(t *testing.T) {
	ctx := context.Background()
	st, p := openProject(t)
	k := &keys.Key{ID: "key_1", Hash: "h", Prefix: "tg-x", Name: "k", ProjectID: p.ID,
		Budget: &ledger.Budget{Currency: "CNY", Amount: 1_000_000, Period: ledger.PeriodTotal}}
	if err := st.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	bs, _ := st.Budgets(ctx, k.ID, p.ID)
	holds := &ledger.LocalHolds{Store: st}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := &ledger.Reservation{ID: ids.New("res"), Holds: []ledger.Hold{{BudgetID: bs[0].ID, Amount: 50_000}}}
			if err := holds.Reserve(ctx, r, bs); err != nil {
				return
			}
			ok.Add(1)
			rec := []ledger.Entry{{RequestID: fmt.Sprint(i), Attempt: 1, Cost: 40_000, Currency: "CNY", Status: "ok"}}
			if err := holds.Settle(ctx, r, []int64{40_000}, rec); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	// Each settles below its hold, freeing room: more than 20 may pass over
	// time, but spending never exceeds the budget.
	w, _ := st.BudgetWindow(ctx, bs[0].ID, 0)
	if w.Spent > 1_000_000 || w.Spent != ok.Load()*40_000 || ok.Load() < 20 {
		t.Errorf("%d reserved; window %+v", ok.Load(), w)
	}
}

func TestBudgetCacheApplies(t *testing.T) {
	ctx := context.Background()
	st, p := openProject(t)
	now := time.Unix(1_800_000_000, 0)
	m := &ledger.Meter{Store: st, Now: func() time.Time { return now }}
	first, _ := ledger.MeterBudgets(m, ctx, "key_x", p.ID)
	if len(first) != 0 {
		t.Fatalf("budgets before any: %v", first)
	}
	if err := st.SetProjectBudget(ctx, p.ID, &ledger.Budget{Currency: "CNY", Amount: 5, Period: ledger.PeriodTotal}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(500 * time.Millisecond)
	if bs, _ := ledger.MeterBudgets(m, ctx, "key_x", p.ID); len(bs) != 0 {
		t.Error("the cache was bypassed within its second")
	}
	now = now.Add(600 * time.Millisecond)
	if bs, _ := ledger.MeterBudgets(m, ctx, "key_x", p.ID); len(bs) != 1 {
		t.Error("a budget change did not apply after a second")
	}
}

// TestLocalHoldsNeverCredit: a negative settlement lowers neither the
// in-memory window (what later reservations are checked against) nor the
// stored one.
func TestLocalHoldsNeverCredit(t *testing.T) {
	ctx := context.Background()
	st, p := openProject(t)
	if err := st.SetProjectBudget(ctx, p.ID, &ledger.Budget{Currency: "CNY", Amount: 100, Period: ledger.PeriodTotal}); err != nil {
		t.Fatal(err)
	}
	bs, _ := st.Budgets(ctx, "", p.ID)
	holds := &ledger.LocalHolds{Store: st}
	for i, actual := range []int64{60, -1000} {
		r := &ledger.Reservation{ID: ids.New("res"), Holds: []ledger.Hold{{BudgetID: bs[0].ID, Amount: 1}}}
		if err := holds.Reserve(ctx, r, bs); err != nil {
			t.Fatal(err)
		}
		if err := holds.Settle(ctx, r, []int64{actual}, []ledger.Entry{{RequestID: fmt.Sprint(i), Attempt: 1, Currency: "CNY", Status: "ok"}}); err != nil {
			t.Fatal(err)
		}
	}
	if w, _ := st.BudgetWindow(ctx, bs[0].ID, 0); w.Spent != 60 {
		t.Errorf("stored spending %d, want 60", w.Spent)
	}
	r := &ledger.Reservation{ID: ids.New("res"), Holds: []ledger.Hold{{BudgetID: bs[0].ID, Amount: 41}}}
	if err := holds.Reserve(ctx, r, bs); err == nil {
		t.Error("41 fit in a budget of 100 with 60 spent: the credit counted")
	}
}
