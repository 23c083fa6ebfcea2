package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

// BenchmarkReplicaFootprint measures what N replicas (processes) on one
// PostgreSQL cost the database at a given load: its connections (peak and
// at the end), and its write rate (transactions and rows a second, from
// pg_stat_database on a database of the run's own). Every request uses a
// virtual key with a budget, so it reserves, settles, bills the ledger and
// is written to the request log. Run it alone, once:
//
//	go test ./internal/cli -run '^$' -bench ReplicaFootprint -benchtime 1x
//
// TIDEGATE_BENCH_RATE (total requests a second, default 300),
// TIDEGATE_BENCH_SECONDS (default 10) and TIDEGATE_BENCH_REPLICAS
// (default "1,3") tune it.
func BenchmarkReplicaFootprint(b *testing.B) {
	rate := envInt(b, "TIDEGATE_BENCH_RATE", 300)
	seconds := envInt(b, "TIDEGATE_BENCH_SECONDS", 10)
	replicas := []int{1, 3}
	if s := os.Getenv("TIDEGATE_BENCH_REPLICAS"); s != "" {
		replicas = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 || n > 16 {
				b.Fatalf("TIDEGATE_BENCH_REPLICAS: want 1 to 16 each, got %q", f)
			}
			replicas = append(replicas, n)
		}
	}
	for _, n := range replicas {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			for range b.N {
				footprint(b, n, rate, time.Duration(seconds)*time.Second)
			}
		})
	}
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100_000 {
		b.Fatalf("%s: want 1 to 100000, got %q", name, s)
	}
	return n
}

// benchDatabase creates a database of the run's own, so pg_stat_database
// counts this run's writes and nothing of the tests running beside it.
func benchDatabase(b *testing.B) (dsn string, stats *sql.DB) {
	admin, err := sql.Open("pgx", pgtest.DSN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		b.Skipf("needs PostgreSQL at %s: %v", pgtest.DSN(), err)
	}
	name := fmt.Sprintf("tgbench_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE " + name + " WITH (FORCE)") })
	u, err := url.Parse(pgtest.DSN())
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	q := u.Query()
	q.Set("application_name", "tidegate-bench")
	u.RawQuery = q.Encode()
	return u.String(), admin
}

type pgCounters struct{ commits, rows int64 }

func readCounters(b *testing.B, db *sql.DB, name string) pgCounters {
	var c pgCounters
	_, _ = db.Exec("SELECT pg_stat_clear_snapshot()")
	err := db.QueryRow(`SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = $1`, name).Scan(&c.commits, &c.rows)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func countConns(db *sql.DB, name string) int {
	var n int
	_ = db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tidegate-bench'`, name).Scan(&n)
	return n
}

func footprint(b *testing.B, n, rate int, d time.Duration) {
	dsn, stats := benchDatabase(b)
	dbName := strings.TrimPrefix(strings.SplitN(dsn[strings.LastIndex(dsn, "/"):], "?", 2)[0], "/")
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "tidegate.yaml")
	cfg := fmt.Sprintf(`store: %q
master_key: %s
log_level: warn
providers:
  - name: sim
    type: sim
    sim: {models: [{name: fast, ttft: 5ms, tokens_per_second: 2000, output_tokens: 16}]}
prices:
  - {model: sim/fast, currency: CNY, input: 1, output: 2}
`, dsn, testKey)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	// Migrate once, as a rollout would, then start the replicas.
	if code := Main(context.Background(), []string{"migrate", "--config", cfgPath}, io.Discard, io.Discard); code != 0 {
		b.Fatalf("migrate exited %d", code)
	}
	urls := make([]string, n)
	for i := range n {
		addrFile := filepath.Join(dir, fmt.Sprintf("addr%d", i))
		cmd := exec.Command(os.Args[0], "serve", "--config", cfgPath, "--no-migrate", "--listen", "127.0.0.1:0", "--addr-file", addrFile)
		cmd.Env = append(os.Environ(), "TIDEGATE_TEST_MAIN=1") // the child runs Main, not the tests
		// Each replica its own working directory: its own bill outbox.
		rd := filepath.Join(dir, fmt.Sprintf("r%d", i))
		if err := os.MkdirAll(rd, 0o700); err != nil {
			b.Fatal(err)
		}
		cmd.Dir = rd
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
		addr, err := awaitAddrFile(context.Background(), addrFile, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		urls[i] = "http://" + addr
	}
	key := benchKey(b, urls[0])
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	body := `{"model":"sim/fast","messages":[{"role":"user","content":"hello"}]}`
	send := func(u string) bool {
		req, _ := http.NewRequest(http.MethodPost, u+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for i := range 4 * n { // warm: connections and statement caches
		send(urls[i%n])
	}
	time.Sleep(1500 * time.Millisecond) // let the warm-up's statistics reach pg_stat_database
	before := readCounters(b, stats, dbName)

	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	slots := make(chan struct{}, 512) // bounds requests in flight
	peak := 0
	tick := time.NewTicker(time.Second / time.Duration(rate))
	sample := time.NewTicker(200 * time.Millisecond)
	start := time.Now()
	for i := 0; time.Since(start) < d; {
		select {
		case <-tick.C:
			select {
			case slots <- struct{}{}:
			default:
				failed.Add(1) // the load tool itself is saturated: counted, not queued
				continue
			}
			u := urls[i%n]
			i++
			wg.Go(func() {
				defer func() { <-slots }()
				if send(u) {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			})
		case <-sample.C:
			peak = max(peak, countConns(stats, dbName))
		}
	}
	elapsed := time.Since(start)
	tick.Stop()
	sample.Stop()
	wg.Wait()
	// Backends flush their statistics within a second of going idle; the
	// request log is flushed every 100 ms.
	time.Sleep(2 * time.Second)
	after := readCounters(b, stats, dbName)
	idle := countConns(stats, dbName)
	secs := elapsed.Seconds()
	commits := float64(after.commits-before.commits) / secs
	rows := float64(after.rows-before.rows) / secs
	achieved := float64(ok.Load()) / secs
	b.ReportMetric(achieved, "req/s")
	b.ReportMetric(float64(peak), "conns-peak")
	b.ReportMetric(float64(idle), "conns-after")
	b.ReportMetric(commits, "commits/s")
	b.ReportMetric(rows, "rows/s")
	b.ReportMetric(float64(failed.Load()), "failed")
	b.Logf("%d replicas, offered %d req/s for %s: %.0f req/s answered, %d failed; PostgreSQL: %d connections at peak, %d after; %.0f commits/s (%.2f per request), %.0f rows/s (%.2f per request)",
		n, rate, d, achieved, failed.Load(), peak, idle, commits, commits/achieved, rows, rows/achieved)
}

// benchKey creates a virtual key with a budget large enough never to bind.
func benchKey(b *testing.B, base string) string {
	req, _ := http.NewRequest(http.MethodPost, base+"/admin/keys",
		strings.NewReader(`{"name":"bench","project":"bench","budget":{"amount":1000000,"currency":"CNY","period":"total"}}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("create key: %d %v", resp.StatusCode, err)
	}
	return out.Key
}
