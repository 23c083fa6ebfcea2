package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

// storeDSNs are the stores every budget test runs on.
func storeDSNs(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "t.db") },
		"postgres": func(t *testing.T) string { return pgtest.Fresh(t) },
	}
}

// meteredGateway runs tidegate on a store, with sim models whose answers
// cost a known amount: sim/fixed answers 10 tokens at ¥5,000 per 1M output
// tokens, so ¥0.05 a request, prompt free.
func meteredGateway(t *testing.T, dsn string, extra string) *gatewayProc {
	return startGateway(t, fmt.Sprintf(`
store: %q
master_key: %s
budgets: {reservation_ttl: 3s}
providers:
  - name: sim
    type: sim
    sim:
      models:
        - {name: fixed, output_tokens: 10}
        - {name: slow, output_tokens: 200, tokens_per_second: 20}
prices:
  - {model: sim/fixed, currency: CNY, input: 0, output: 5000}
  - {model: sim/slow, currency: CNY, input: 0, output: 5000}
%s`, dsn, testKey, extra))
}

// admin calls the admin API with the master key.
func admin(t *testing.T, g *gatewayProc, method, path, body string) (int, map[string]any) {
	t.Helper()
	return callAs(t, g, testKey, method, path, body)
}

// callAs calls the gateway with a key and decodes the JSON answer.
func callAs(t *testing.T, g *gatewayProc, key, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, g.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func createKey(t *testing.T, g *gatewayProc, body string) (id, key string) {
	t.Helper()
	status, out := admin(t, g, http.MethodPost, "/admin/keys", body)
	if status != http.StatusCreated {
		t.Fatalf("create key: %d %v", status, out)
	}
	return out["id"].(string), out["key"].(string)
}

// chatAs sends a chat request with a key; it returns the status, the error
// type and code, and the usage the client saw.
func chatAs(t *testing.T, client *http.Client, g *gatewayProc, key, body string) (int, string, string, int) {
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return 0, "", "", 0
	}
	defer resp.Body.Close()
	var out struct {
		Error struct{ Type, Code string }
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out.Error.Type, out.Error.Code, out.Usage.CompletionTokens
}

// TestBudgetRace: a key with a total budget of ¥1.00 and 200 concurrent
// requests each worth ¥0.05: at most 20 succeed, every other one gets the
// budget error, and the ledger's total stays within ¥1.00, on both stores.
func TestBudgetRace(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			g := meteredGateway(t, dsn(t), "")
			_, key := createKey(t, g, `{"name":"race","project":"crm","budget":{"amount":1.00,"currency":"CNY","period":"total"}}`)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
			var mu sync.Mutex
			ok, denied := 0, 0
			var wg sync.WaitGroup
			for i := 0; i < 200; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					status, typ, code, _ := chatAs(t, client, g, key, fmt.Sprintf(`{"model":"sim/fixed","max_tokens":10,"messages":[{"role":"user","content":"request %d"}]}`, i))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case status == 200:
						ok++
					case status == 429 && typ == "insufficient_quota" && code == "budget_exceeded":
						denied++
					default:
						t.Errorf("request %d: %d %s %s", i, status, typ, code)
					}
				}(i)
			}
			wg.Wait()
			if ok > 20 || ok < 15 || ok+denied != 200 {
				t.Errorf("%d succeeded, %d denied; want at most 20 (and most of them) to succeed", ok, denied)
			}
			st, err := openStore(context.Background(), storeOf(t, g))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			settled(t, st, int64(ok))
			records, _, completion, cost, err := st.LedgerTotals(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// The bound: prompt is free here and the output is capped by
			// max_tokens, so estimate = truth and the bound is 0.
			if cost > 1_000_000 || records != int64(ok) || completion != int64(10*ok) {
				t.Errorf("ledger: %d records, %d completion tokens, cost %d micro-CNY; %d requests succeeded", records, completion, cost, ok)
			}
			if open, _ := st.OpenReservations(context.Background()); open != 0 {
				t.Errorf("%d reservations left open", open)
			}
		})
	}
}

// settled waits until every request has settled: the client holds its
// answer a moment before the ledger's durable commit lands.
func settled(t *testing.T, st *store.DB, records int64) {
	t.Helper()
	waitUntil(t, 30*time.Second, "settlements", func() bool {
		open, err := st.OpenReservations(context.Background())
		n, _, _, _, err2 := st.LedgerTotals(context.Background())
		return err == nil && err2 == nil && open == 0 && n >= records
	})
}

// storeOf reads back the store DSN a gateway was started with.
func storeOf(t *testing.T, g *gatewayProc) string {
	t.Helper()
	return g.store
}

// TestThousandConcurrentRequests: 1,000 concurrent requests on one key make
// exactly 1,000 ledger records whose token sums equal what the upstream reported.
func TestThousandConcurrentRequests(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			g := meteredGateway(t, dsn(t), "server: {max_conns_per_ip: 4096}\n") // one client address, 1,000 connections
			_, key := createKey(t, g, `{"name":"load","project":"crm","budget":{"amount":1000,"currency":"CNY","period":"month"}}`)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000}}
			var mu sync.Mutex
			seen := 0
			var wg sync.WaitGroup
			for i := 0; i < 1000; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					status, _, _, completion := chatAs(t, client, g, key, fmt.Sprintf(`{"model":"sim/fixed","max_tokens":10,"messages":[{"role":"user","content":"load %d"}]}`, i))
					if status != 200 {
						t.Errorf("request %d: %d", i, status)
					}
					mu.Lock()
					seen += completion
					mu.Unlock()
				}(i)
			}
			wg.Wait()
			st, err := openStore(context.Background(), g.store)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			settled(t, st, 1000)
			records, _, completion, cost, _ := st.LedgerTotals(context.Background())
			if records != 1000 || completion != int64(seen) || cost != 1000*50_000 {
				t.Errorf("ledger: %d records, %d completion tokens (upstream reported %d), cost %d", records, completion, seen, cost)
			}
			keys, _ := st.ListKeys(context.Background())
			w, _ := st.BudgetWindow(context.Background(), keys[0].Budget.ID, ledger.PeriodStart(ledger.PeriodMonth, time.Now()))
			if w.Spent != cost || w.Reserved != 0 {
				t.Errorf("budget window %+v, ledger cost %d", w, cost)
			}
		})
	}
}
