package cli

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// ledgerRow is what the crash tests check of a ledger record.
type ledgerRow struct {
	Attempt          int
	CompletionTokens int64
	Estimated        bool
	Status           string
}

// ledgerRows reads the whole ledger straight from the database.
func ledgerRows(t *testing.T, dsn string) (rows []ledgerRow, prompt []int64, cost int64) {
	t.Helper()
	driver, source := "pgx", dsn
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, source = "sqlite", "file:"+path+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT attempt, prompt_tokens, completion_tokens, estimated, status, cost FROM usage_ledger ORDER BY request_id, attempt`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var r ledgerRow
		var p, est, c int64
		if err := rs.Scan(&r.Attempt, &p, &r.CompletionTokens, &est, &r.Status, &c); err != nil {
			t.Fatal(err)
		}
		r.Estimated = est == 1
		rows, prompt, cost = append(rows, r), append(prompt, p), cost+c
	}
	return rows, prompt, cost
}

// clientSaw is what a client got of an answer before the gateway died.
type clientSaw struct {
	done       bool  // [DONE], or a whole JSON answer
	chars      int   // content characters received
	completion int64 // the usage's completion tokens, -1 if none came
}

func send(t *testing.T, url, key, body string) clientSaw {
	t.Helper()
	saw := clientSaw{completion: -1}
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return saw // killed before the answer began
	}
	defer resp.Body.Close()
	if !strings.Contains(body, `"stream":true`) {
		var out struct {
			Choices []struct{ Message struct{ Content string } }
			Usage   *struct {
				CompletionTokens int64 `json:"completion_tokens"`
			}
		}
		b, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(b, &out) == nil && out.Usage != nil {
			saw.done, saw.completion, saw.chars = true, out.Usage.CompletionTokens, len(out.Choices[0].Message.Content)
		}
		return saw
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			saw.done = true
			continue
		}
		var c struct {
			Choices []struct{ Delta struct{ Content string } }
			Usage   *struct {
				CompletionTokens int64 `json:"completion_tokens"`
			}
		}
		if json.Unmarshal([]byte(line), &c) == nil {
			for _, ch := range c.Choices {
				saw.chars += len(ch.Delta.Content)
			}
			if c.Usage != nil {
				saw.completion = c.Usage.CompletionTokens
			}
		}
	}
	return saw
}

// TestCrashPoints: the gateway is SIGKILLed at each point of a bill's life
// (TIDEGATE_TEST_CRASH_AT) and restarted. Every time the ledger ends with
// one record for the attempt — exact when the usage reached the gateway,
// estimated and flagged otherwise, delivered tokens billed — and no hold
// is left: the budget's window spent what the ledger says.
func TestCrashPoints(t *testing.T) {
	const (
		fast      = `{"model":"up/fast","messages":[{"role":"user","content":"crash point"}]}`
		fastUsage = `{"model":"up/fast","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"crash point"}]}`
		slow      = `{"model":"up/slow","stream":true,"messages":[{"role":"user","content":"crash point"}]}`
	)
	cases := []struct {
		name, crashAt, body string
		// want is the record expected; CompletionTokens < 0 means "what the
		// client received, estimated" and is filled in from what it saw.
		want     ledgerRow
		wantDone bool
	}{
		{"before the upstream call", ledger.FaultBeforeUpstream, fast,
			ledgerRow{Attempt: 1, CompletionTokens: 0, Estimated: true, Status: ledger.StatusCrashed}, false},
		{"mid-stream after tokens were delivered", ledger.FaultMidStream + ":3", slow,
			ledgerRow{Attempt: 1, CompletionTokens: -1, Estimated: true, Status: ledger.StatusCrashed}, false},
		{"after [DONE], before the commit", ledger.FaultAfterDelivery, fastUsage,
			ledgerRow{Attempt: 1, CompletionTokens: 12, Status: "ok"}, true},
		{"after a whole answer, before the commit", ledger.FaultAfterDelivery, fast,
			ledgerRow{Attempt: 1, CompletionTokens: 12, Status: "ok"}, true},
	}
	for name, dsn := range storeDSNs(t) {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				up := simUpstream(t, sim.Model{Name: "fast", OutputTokens: 12}, sim.Model{Name: "slow", OutputTokens: 400, TokensPerSecond: 40})
				storeDSN := dsn(t)
				dir := t.TempDir()
				cfgPath := filepath.Join(dir, "crash.yaml")
				os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
store: %q
master_key: %s
budgets: {reservation_ttl: 1h, outbox: {path: %q}}
providers:
  - {name: up, type: openai, base_url: %s/v1, api_key: sk-up, models: [fast, slow]}
prices:
  - {model: up/fast, currency: CNY, input: 1000, output: 2000}
  - {model: up/slow, currency: CNY, input: 1000, output: 2000}
`, storeDSN, testKey, filepath.Join(dir, "outbox"), up.URL)), 0o600)

				cmd, url := childGateway(t, cfgPath, app.CrashAtEnv+"="+tc.crashAt)
				_, key := createKey(t, &gatewayProc{URL: url}, `{"name":"crash","project":"p","budget":{"amount":100,"currency":"CNY","period":"total"}}`)
				saw := send(t, url, key, tc.body)
				waitErr := cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("the gateway was not killed at %s: %v", tc.crashAt, waitErr)
				}
				if saw.done != tc.wantDone {
					t.Fatalf("client saw the whole answer: %v, want %v", saw.done, tc.wantDone)
				}

				childGateway(t, cfgPath) // the restart settles what the outbox holds before it listens
				want := tc.want
				if want.CompletionTokens < 0 {
					if saw.chars == 0 {
						t.Fatal("no tokens reached the client before the kill")
					}
					want.CompletionTokens = gateway.EstimateTokens(saw.chars)
				}
				rows, prompt, cost := ledgerRows(t, storeDSN)
				if diff := cmp.Diff([]ledgerRow{want}, rows); diff != "" {
					t.Fatalf("ledger (-want +got):\n%s", diff)
				}
				if prompt[0] <= 0 || cost <= 0 {
					t.Errorf("prompt %d tokens, cost %d: the prompt must be billed", prompt[0], cost)
				}
				st, err := openStore(context.Background(), storeDSN)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if n, _ := st.OpenReservations(context.Background()); n != 0 {
					t.Errorf("%d reservations left", n)
				}
				keys, _ := st.ListKeys(context.Background())
				w, _ := st.BudgetWindow(context.Background(), keys[0].Budget.ID, ledger.PeriodStart(ledger.PeriodTotal, time.Now()))
				if w != (ledger.Window{Spent: cost}) {
					t.Errorf("budget window %+v, ledger cost %d", w, cost)
				}
			})
		}
	}
}
