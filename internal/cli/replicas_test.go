package cli

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

// replicasConfig: one PostgreSQL schema, Redis for the limits under a
// prefix of the test's own, a 20s limits window (so "rpm" is requests per
// 20s: the test need not wait a minute), leases that lapse in 2s, a short
// drain delay, a per-address connection cap the balancer cannot reach (it
// is one client address, and each of its connections is held by the
// server 0.5s after its Connection: close answer), and sim models of known cost: sim/fixed answers 10 tokens
// for ¥0.05, sim/slow streams 120 tokens over about 4s, sim/slower 300
// over about 10s (the streams a SIGKILL must catch running, even on a
// loaded machine); batch items of sim/batchy take about 1s, two at a time
// per replica, and a dead replica's are rescued after 8s (2 × item_timeout).
const replicasConfig = `
store: %q
master_key: %s
limits: {url: "redis://127.0.0.1:6379/0", prefix: %q, window: 20s, lease_ttl: 2s}
server: {drain_delay: 300ms, shutdown_grace: 30s, max_conns_per_ip: 100000}
budgets: {reservation_ttl: 3s, outbox: {path: OUTBOX}}
providers:
  - name: sim
    type: sim
    sim:
      models:
        - {name: fixed, output_tokens: 10}
        - {name: slow, output_tokens: 120, tokens_per_second: 30}
        - {name: slower, output_tokens: 300, tokens_per_second: 30}
        - {name: batchy, output_tokens: 20, tokens_per_second: 20}
batches: {poll: 100ms, concurrency: 2, item_timeout: 4s}
prices:
  - {model: sim/fixed, currency: CNY, input: 0, output: 5000}
  - {model: sim/slow, currency: CNY, input: 0, output: 5000}
  - {model: sim/slower, currency: CNY, input: 0, output: 5000}
  - {model: sim/batchy, currency: CNY, input: 0, output: 5000}
`

// TestReplicas runs three tidegate processes on one PostgreSQL and one
// Redis behind a round-robin balancer (see lb): limits and budgets hold
// across them, a SIGKILL loses no bill and bills nothing twice (of streams
// and of a batch, which the other replicas finish), and a rolling restart
// under load fails no request.
func TestReplicas(t *testing.T) {
	requireRedis(t)
	dsn := pgtest.Fresh(t)
	c := newCluster(t, 3, fmt.Sprintf(replicasConfig, dsn, testKey, redisPrefix()))
	front := &gatewayProc{URL: c.front.URL}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}

	t.Run("rpm 60 holds across three", func(t *testing.T) {
		_, key := createKey(t, front, `{"name":"rpm","project":"replicas","rpm":60}`)
		start := time.Now()
		var ok, limited atomic.Int64
		served := make([]atomic.Int64, 3)
		var wg sync.WaitGroup
		next := make(chan int)
		for range 6 {
			wg.Go(func() {
				for i := range next {
					status, code, replica := chatVia(t, client, c.front.URL, key, fmt.Sprintf(`{"model":"sim/fixed","messages":[{"role":"user","content":"rpm %d"}]}`, i))
					switch {
					case status == 200:
						ok.Add(1)
						served[replica].Add(1)
					case status == 429 && code == "rpm_limit_exceeded":
						limited.Add(1)
					default:
						t.Errorf("request %d: %d %s", i, status, code)
					}
				}
			})
		}
		for i := range 120 {
			next <- i
		}
		close(next)
		wg.Wait()
		if took := time.Since(start); took >= 20*time.Second {
			t.Fatalf("120 requests took %v, past the 20s window: the count proves nothing", took)
		}
		if n := ok.Load(); n < 57 || n > 63 || n+limited.Load() != 120 {
			t.Errorf("%d admitted, %d refused for rpm; want 60 ± 3 admitted", n, limited.Load())
		}
		for i := range served {
			if served[i].Load() == 0 {
				t.Errorf("replica %d admitted none: the requests were not spread", i)
			}
		}
	})

	t.Run("max_streams holds across three", func(t *testing.T) {
		_, key := createKey(t, front, `{"name":"streams","project":"replicas","max_streams":3}`)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		replicas := map[string]bool{}
		for i := range 3 {
			resp := openStream(t, ctx, c.front.URL, key, "sim/slow", i)
			if resp.StatusCode != 200 {
				t.Fatalf("stream %d: %d", i, resp.StatusCode)
			}
			replicas[resp.Header.Get("X-Test-Replica")] = true
			defer resp.Body.Close()
		}
		if len(replicas) != 3 {
			t.Errorf("the three streams ran on replicas %v, want one each", replicas)
		}
		status, code, _ := chatVia(t, client, c.front.URL, key, `{"model":"sim/slow","stream":true,"messages":[{"role":"user","content":"fourth"}]}`)
		if status != 429 || code != "max_streams_exceeded" {
			t.Errorf("a fourth stream: %d %s; want 429 max_streams_exceeded", status, code)
		}
	})

	t.Run("a budget holds across three", func(t *testing.T) {
		id, key := createKey(t, front, `{"name":"budget","project":"replicas-budget","budget":{"amount":1.00,"currency":"CNY","period":"total"}}`)
		var ok, denied atomic.Int64
		var wg sync.WaitGroup
		for i := range 90 {
			wg.Go(func() {
				status, code, _ := chatVia(t, client, c.front.URL, key, fmt.Sprintf(`{"model":"sim/fixed","max_tokens":10,"messages":[{"role":"user","content":"budget %d"}]}`, i))
				switch {
				case status == 200:
					ok.Add(1)
				case status == 429 && code == "budget_exceeded":
					denied.Add(1)
				default:
					t.Errorf("request %d: %d %s", i, status, code)
				}
			})
		}
		wg.Wait()
		// The documented bound: prompt free, output capped by max_tokens, so
		// the estimate is the truth and nothing may pass ¥1.00 (20 requests).
		if n := ok.Load(); n > 20 || n < 15 || n+denied.Load() != 90 {
			t.Errorf("%d succeeded, %d denied; want at most 20 (and most of them)", n, denied.Load())
		}
		waitUntil(t, 20*time.Second, "the budget's requests settled", func() bool {
			return len(keyLedger(t, dsn, id)) == int(ok.Load())
		})
		var cost int64
		for _, r := range keyLedger(t, dsn, id) {
			cost += r.cost
		}
		if cost > 1_000_000 {
			t.Errorf("spent %d micro-CNY of a ¥1.00 budget", cost)
		}
	})

	t.Run("SIGKILL mid-streams loses no bill and bills nothing twice", func(t *testing.T) {
		id, key := createKey(t, front, `{"name":"kill","project":"replicas-kill","budget":{"amount":10000,"currency":"CNY","period":"total"}}`)
		type result struct {
			done    bool
			replica int
		}
		results := make([]result, 24)
		var fast, all sync.WaitGroup
		for i := range 24 {
			model := "sim/slower"
			if i%2 == 0 {
				model = "sim/fixed"
				fast.Add(1)
			}
			all.Go(func() {
				if model == "sim/fixed" {
					defer fast.Done()
				}
				results[i].done, results[i].replica = streamVia(c.front.URL, key, model, i)
			})
		}
		fast.Wait()
		time.Sleep(300 * time.Millisecond) // the fast streams settle; the slow run for seconds more
		_ = c.kill(0, syscall.SIGKILL)
		all.Wait()
		completed, killed := 0, 0
		for i, r := range results {
			switch {
			case r.done:
				completed++
			case r.replica == 0:
				killed++
			default:
				t.Errorf("stream %d on replica %d failed though its replica lived", i, r.replica)
			}
		}
		if killed == 0 {
			t.Fatalf("no stream was cut: the kill came after the slow streams (%d completed)", completed)
		}
		c.start(0) // its outbox (local disk) settles the cut streams
		c.awaitReady()
		waitUntil(t, 30*time.Second, "every stream billed", func() bool { return len(keyLedger(t, dsn, id)) >= 24 })
		rows := keyLedger(t, dsn, id)
		seen := map[string]int{}
		exact, crashed := 0, 0
		var cost int64
		for _, r := range rows {
			seen[r.request]++
			cost += r.cost
			switch {
			case r.status == "ok" && !r.estimated:
				exact++
			case r.status == ledger.StatusCrashed && r.estimated:
				crashed++
			default:
				t.Errorf("unexpected record %+v", r)
			}
		}
		for req, n := range seen {
			if n != 1 {
				t.Errorf("request %s billed %d times", req, n)
			}
		}
		if len(rows) != 24 || exact != completed || crashed != killed {
			t.Errorf("ledger: %d rows, %d exact, %d crashed; %d streams completed, %d were cut", len(rows), exact, crashed, completed, killed)
		}
		st, err := openStore(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		listed, err := st.ListKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var budgetID string
		for _, k := range listed {
			if k.ID == id && k.Budget != nil {
				budgetID = k.Budget.ID
			}
		}
		waitUntil(t, 20*time.Second, "the dead replica's holds released", func() bool {
			w, err := st.BudgetWindow(context.Background(), budgetID, ledger.PeriodStart(ledger.PeriodTotal, time.Now()))
			return err == nil && w.Reserved == 0 && w.Spent == cost
		})
	})

	t.Run("SIGKILL mid-batch: the others finish it, every custom_id once, every call billed once", func(t *testing.T) {
		batchSurvivesKill(t, c, dsn, 1)
	})

	t.Run("a rolling restart under load fails no request", func(t *testing.T) {
		id, key := createKey(t, front, `{"name":"rolling","project":"replicas-rolling"}`)
		var stop atomic.Bool
		var okCount, failed atomic.Int64
		var wg sync.WaitGroup
		// Should a restart fail the test, its workers stop before the subtest
		// ends (a worker's report after that would panic and hide the cause).
		defer func() { stop.Store(true); wg.Wait() }()
		for w := range 5 {
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					if w < 2 { // streams, several seconds each: they span a drain
						if done, replica := streamVia(c.front.URL, key, "sim/slow", i); !done {
							failed.Add(1)
							t.Errorf("worker %d: a stream on replica %d was cut", w, replica)
						} else {
							okCount.Add(1)
						}
						continue
					}
					status, code, replica := chatVia(t, client, c.front.URL, key, fmt.Sprintf(`{"model":"sim/fixed","messages":[{"role":"user","content":"rolling %d %d"}]}`, w, i))
					if status != 200 {
						failed.Add(1)
						t.Errorf("worker %d: %d %s from replica %d", w, status, code, replica)
					} else {
						okCount.Add(1)
					}
				}
			})
		}
		time.Sleep(time.Second) // load before the first restart
		for i := range 3 {
			if err := c.kill(i, syscall.SIGTERM); err != nil {
				t.Errorf("replica %d after SIGTERM: %v", i, err)
			}
			c.start(i)
			c.awaitReady()
		}
		time.Sleep(time.Second) // load after the last restart
		stop.Store(true)
		wg.Wait()
		if failed.Load() != 0 || okCount.Load() < 30 {
			t.Errorf("%d requests succeeded, %d failed during the rolling restart", okCount.Load(), failed.Load())
		}
		waitUntil(t, 20*time.Second, "every request billed once", func() bool {
			return len(keyLedger(t, dsn, id)) == int(okCount.Load())
		})
		t.Logf("%d requests through three restarts; the balancer retried %d refused connections", okCount.Load(), c.lb.retried.Load())
	})
}

// chatVia posts a chat through url, returning the status, the error code
// and the replica that answered.
func chatVia(t *testing.T, client *http.Client, url, key, body string) (int, string, int) {
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return 0, "", -1
	}
	defer resp.Body.Close()
	var out struct{ Error struct{ Code string } }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	replica, _ := strconv.Atoi(resp.Header.Get("X-Test-Replica"))
	return resp.StatusCode, out.Error.Code, replica
}

// openStream starts a stream and reads until its first chunk.
func openStream(t *testing.T, ctx context.Context, url, key, model string, i int) *http.Response {
	body := fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"stream %d"}]}`, model, i)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == 200 {
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	return resp
}

// streamVia runs a stream to its end, reporting whether [DONE] came and
// which replica served it.
func streamVia(url, key, model string, i int) (done bool, replica int) {
	body := fmt.Sprintf(`{"model":%q,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream %d"}]}`, model, i)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, -1
	}
	defer resp.Body.Close()
	replica, _ = strconv.Atoi(resp.Header.Get("X-Test-Replica"))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			done = true
		}
	}
	return done && resp.StatusCode == 200, replica
}

type keyRow struct {
	request   string
	status    string
	estimated bool
	cost      int64
}

// keyLedger reads one key's ledger records straight from the database.
func keyLedger(t *testing.T, dsn, keyID string) []keyRow {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT request_id, status, estimated, cost FROM usage_ledger WHERE key_id = $1`, keyID)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var rows []keyRow
	for rs.Next() {
		var r keyRow
		var est int64
		if err := rs.Scan(&r.request, &r.status, &est, &r.cost); err != nil {
			t.Fatal(err)
		}
		r.estimated = est == 1
		rows = append(rows, r)
	}
	return rows
}
