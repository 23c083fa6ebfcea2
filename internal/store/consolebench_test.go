package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/console/query"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/postgres"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// benchRows is the request log's size in the console benchmark: the
// default max_rows, a full log.
var benchRows = 1_000_000

// fillRequestLog writes n rows over the 7 days before now, shaped like
// traffic: 100 keys and the master key, 10 models, mostly ok, a few of each
// slow verdict and error. Records are short (the queries never read them
// but for one row).
func fillRequestLog(b *testing.B, s *store.DB, n int, now time.Time) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	span := int64(7 * 24 * time.Hour / time.Microsecond)
	start := now.Add(-7 * 24 * time.Hour)
	verdicts := []struct {
		kind   string
		status int
		share  float64
	}{{"network", 200, 0.005}, {"queue", 200, 0.02}, {"prefill", 200, 0.03}, {"decode", 200, 0.02},
		{"upstream_error", 502, 0.015}, {"refused", 429, 0.01}, {"client", 200, 0.005}}
	const batch = 4096
	rows := make([]reqlog.Row, 0, batch)
	for i := range n {
		v, status := "ok", 200
		x := rng.Float64()
		for _, vd := range verdicts {
			if x < vd.share {
				v, status = vd.kind, vd.status
				break
			}
			x -= vd.share
		}
		key := ""
		if k := rng.IntN(101); k < 100 {
			key = fmt.Sprintf("key_%03d", k)
		}
		at := start.Add(time.Duration(int64(i)*span/int64(n)+rng.Int64N(1000)) * time.Microsecond)
		rows = append(rows, reqlog.Row{ID: fmt.Sprintf("req_%012d", i), ReceivedAt: at, Endpoint: "/v1/chat/completions",
			Model: fmt.Sprintf("model-%d", rng.IntN(10)), Route: "sim/fast", KeyID: key, Status: status, Verdict: v,
			Total: 150 * time.Millisecond, Record: `{"id":"x","phases":{"total_ms":150}}`})
		if len(rows) == batch || i == n-1 {
			if err := s.InsertRequestLogs(ctx, rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
}

// BenchmarkConsoleQueries measures each console query against a request
// log of a million rows, on SQLite and PostgreSQL, and reports its p50 and
// p99 (target: p99 under 200 ms). Run it alone:
//
//	go test -run '^$' -bench ConsoleQueries -benchtime 30x -timeout 60m ./internal/store/
func BenchmarkConsoleQueries(b *testing.B) {
	now := time.Now()
	open := map[string]func(b *testing.B) *store.DB{
		"sqlite": func(b *testing.B) *store.DB {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"postgres": func(b *testing.B) *store.DB {
			dsn := pgtest.Fresh(b)
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			pgDSN = dsn
			return s
		},
	}
	project := []string{"key_000", "key_001", "key_002", "key_003", "key_004", "key_005", "key_006", "key_007", "key_008", "key_009"}
	mid := now.Add(-84 * time.Hour)
	queries := []struct {
		name string
		run  func(ctx context.Context, s *store.DB) error
	}{
		{"requests/newest", page(query.RequestFilter{})},
		{"requests/verdict=network", page(query.RequestFilter{Verdict: "network"})},
		{"requests/model", page(query.RequestFilter{Model: "model-3"})},
		{"requests/key", page(query.RequestFilter{KeyID: "key_042"})},
		{"requests/status=502", page(query.RequestFilter{Status: 502})},
		{"requests/project-scope", page(query.RequestFilter{Keys: project})},
		{"requests/project-scope+verdict", page(query.RequestFilter{Keys: project, Verdict: "decode"})},
		{"requests/deep-page", page(query.RequestFilter{BeforeAt: mid, BeforeID: "req_999999999999"})},
		{"requests/hour+verdict", page(query.RequestFilter{From: mid, To: mid.Add(time.Hour), Verdict: "prefill"})},
		{"request/by-id", func(ctx context.Context, s *store.DB) error {
			_, err := s.RequestLog(ctx, "req_000000500000")
			return err
		}},
		{"overview/hour", traffic(nil, now.Add(-time.Hour))},
		{"overview/day", traffic(nil, now.Add(-24*time.Hour))},
		{"overview/month", traffic(nil, now.AddDate(0, 0, -30))},
		{"overview/project-month", traffic(project, now.AddDate(0, 0, -30))},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := open[name](b)
			defer s.Close()
			began := time.Now()
			fillRequestLog(b, s, benchRows, now)
			b.Logf("%s: filled %d rows in %s", name, benchRows, time.Since(began).Round(time.Second))
			if name == "postgres" {
				// Autovacuum analyzes a table after this many inserts; the
				// bench does not wait for it.
				db, err := sql.Open("pgx", pgDSN)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := db.Exec(`ANALYZE request_log; ANALYZE request_log_hourly`); err != nil {
					b.Fatal(err)
				}
				db.Close()
			}
			for _, q := range queries {
				b.Run(q.name, func(b *testing.B) {
					ctx := context.Background()
					if err := q.run(ctx, s); err != nil { // warm the cache and the statement
						b.Fatal(err)
					}
					ds := make([]time.Duration, 0, b.N)
					for b.Loop() {
						t0 := time.Now()
						if err := q.run(ctx, s); err != nil {
							b.Fatal(err)
						}
						ds = append(ds, time.Since(t0))
					}
					slices.Sort(ds)
					b.ReportMetric(ms(ds[len(ds)/2]), "p50-ms")
					b.ReportMetric(ms(ds[min(len(ds)-1, len(ds)*99/100)]), "p99-ms")
				})
			}
		})
	}
}

var pgDSN string // the bench's PostgreSQL schema

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func page(f query.RequestFilter) func(context.Context, *store.DB) error {
	f.Limit = 51 // a page and one more, as the console asks
	return func(ctx context.Context, s *store.DB) error {
		_, err := s.ConsoleRequests(ctx, f)
		return err
	}
}

func traffic(keys []string, from time.Time) func(context.Context, *store.DB) error {
	return func(ctx context.Context, s *store.DB) error {
		_, err := s.ConsoleTraffic(ctx, keys, from)
		return err
	}
}
