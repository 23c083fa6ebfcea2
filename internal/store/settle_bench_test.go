package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// BenchmarkMeteredWrites is one metered request's writes on SQLite, many at
// once as under load: a reservation, its settlement with one ledger entry,
// and a request-log row. It reports the process CPU per request (the
// writer's group commits), which is what a request costs the gateway here.
func BenchmarkMeteredWrites(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "t.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p, err := s.EnsureProject(ctx, "p")
	if err != nil {
		b.Fatal(err)
	}
	k := &keys.Key{ID: "key_bench", Hash: "hash-bench", Prefix: "tg-abcd", Name: "app", ProjectID: p.ID, Models: []string{"chat"},
		Budget: &ledger.Budget{Currency: "USD", Amount: 1 << 50, Period: ledger.PeriodMonth}}
	if err := s.CreateKey(ctx, k); err != nil {
		b.Fatal(err)
	}
	bs, err := s.Budgets(ctx, k.ID, k.ProjectID)
	if err != nil || len(bs) == 0 {
		b.Fatal(err, len(bs))
	}
	const workers = 64 // requests in flight at once
	cpu0 := cpuTime()
	b.ResetTimer()
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= b.N {
					return
				}
				now := time.Now()
				r := &ledger.Reservation{Holds: []ledger.Hold{{BudgetID: bs[0].ID, PeriodStart: ledger.PeriodStart(bs[0].Period, now), Amount: 100}},
					ExpiresAt: now.Add(time.Minute)}
				if err := s.Reserve(ctx, r); err != nil {
					b.Error(err)
					return
				}
				id := fmt.Sprintf("req%d", i)
				rec := []ledger.Entry{{RequestID: id, Attempt: 1, KeyID: k.ID, ProjectID: k.ProjectID, Provider: "p", Model: "m",
					PromptTokens: 30, CompletionTokens: 50, Cost: 35, Currency: "USD", Priced: true, Status: "ok"}}
				if err := s.Settle(ctx, r, []int64{35}, rec); err != nil {
					b.Error(err)
					return
				}
				row := reqlog.Row{ID: id, ReceivedAt: now, Endpoint: "/v1/chat/completions", Model: "m", KeyID: k.ID, Status: 200, Record: `{}`}
				if err := s.InsertRequestLogs(ctx, []reqlog.Row{row}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
