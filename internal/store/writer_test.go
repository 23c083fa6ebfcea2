package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/postgres"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// TestWriterBatch: operations committed together keep the outcome they would
// have alone. Operations without a savepoint run bare; when one fails, the
// transaction is rolled back and the batch replayed, each isolated, so the
// others commit once and the failed one leaves nothing.
func TestWriterBatch(t *testing.T) {
	opens := map[string]func(t *testing.T) *store.DB{
		"sqlite": func(t *testing.T) *store.DB {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(t *testing.T) *store.DB {
			s, err := postgres.Open(context.Background(), pgtest.Fresh(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			exec := func(q string) func(ctx context.Context, tx *sql.Tx) error {
				return func(ctx context.Context, tx *sql.Tx) error { _, err := tx.ExecContext(ctx, q); return err }
			}
			if err := s.WriteForTest(ctx, false, exec(`CREATE TABLE writer_probe (v TEXT)`)); err != nil {
				t.Fatal(err)
			}
			refused := errors.New("refused")
			type op struct {
				name      string
				refusable bool
				fails     bool
			}
			cases := []struct {
				name     string
				ops      []op
				want     []string // rows committed
				wantRuns map[string]int32
			}{
				{"all succeed: each applied once, no replay", []op{{"a", false, false}, {"b", true, false}, {"c", false, false}},
					[]string{"a", "b", "c"}, map[string]int32{"a": 1, "b": 1, "c": 1}},
				{"a refusal: rolled back alone, no replay", []op{{"d", false, false}, {"e", true, true}, {"f", false, false}},
					[]string{"d", "f"}, map[string]int32{"d": 1, "e": 1, "f": 1}},
				{"a bare failure: replayed isolated", []op{{"g", false, false}, {"h", false, true}, {"i", true, true}, {"j", false, false}},
					[]string{"g", "j"}, map[string]int32{"g": 2, "h": 2, "i": 1, "j": 1}},
			}
			for _, tc := range cases {
				if err := s.WriteForTest(ctx, false, exec(`DELETE FROM writer_probe`)); err != nil {
					t.Fatal(err)
				}
				// Hold the writer on one operation until the batch is queued
				// behind it, so the batch commits as one.
				running, release := make(chan struct{}), make(chan struct{})
				held := make(chan error, 1)
				go func() {
					held <- s.WriteForTest(ctx, false, func(context.Context, *sql.Tx) error {
						close(running)
						<-release
						return nil
					})
				}()
				<-running
				// Queued one at a time, so the batch's order is the cases'.
				runs := map[string]*atomic.Int32{}
				errs := make([]error, len(tc.ops))
				var wg sync.WaitGroup
				for i, o := range tc.ops {
					runs[o.name] = &atomic.Int32{}
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[i] = s.WriteForTest(ctx, o.refusable, func(ctx context.Context, tx *sql.Tx) error {
							runs[o.name].Add(1)
							if err := exec(`INSERT INTO writer_probe (v) VALUES ('`+o.name+`')`)(ctx, tx); err != nil {
								return err
							}
							if o.fails {
								return refused
							}
							return nil
						})
					}()
					for deadline := time.Now().Add(10 * time.Second); s.QueuedForTest() < i+1; runtime.Gosched() {
						if time.Now().After(deadline) {
							t.Fatalf("%s: only %d operations queued", tc.name, s.QueuedForTest())
						}
					}
				}
				close(release)
				wg.Wait()
				if err := <-held; err != nil {
					t.Fatal(err)
				}
				for i, o := range tc.ops {
					if got := errors.Is(errs[i], refused); got != o.fails || (!o.fails && errs[i] != nil) {
						t.Errorf("%s: %s returned %v", tc.name, o.name, errs[i])
					}
				}
				rows, err := s.SQLForTest().QueryContext(ctx, `SELECT v FROM writer_probe ORDER BY v`)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for rows.Next() {
					var v string
					if err := rows.Scan(&v); err != nil {
						t.Fatal(err)
					}
					got = append(got, v)
				}
				rows.Close()
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("%s: rows (-want +got):\n%s", tc.name, d)
				}
				gotRuns := map[string]int32{}
				for k, v := range runs {
					gotRuns[k] = v.Load()
				}
				if d := cmp.Diff(tc.wantRuns, gotRuns); d != "" {
					t.Errorf("%s: applies (-want +got):\n%s", tc.name, d)
				}
			}
		})
	}
}
