package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// childGateway runs this test binary as a real tidegate process, with
// extra environment variables.
func childGateway(t *testing.T, configPath string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	cmd := exec.Command(os.Args[0], "serve", "--config", configPath, "--listen", "127.0.0.1:0", "--addr-file", addrFile)
	cmd.Env = append(append(os.Environ(), "TIDEGATE_TEST_MAIN=1"), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := awaitAddrFile(context.Background(), addrFile, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, "http://" + addr
}

// TestCrashMidStreams: the gateway is killed with SIGKILL while 50 streams
// run. After a restart every reservation is settled, no attempt is recorded
// twice, the ledger matches what the upstream reported for the streams that
// completed, and each killed stream has one estimated record (the outbox).
func TestCrashMidStreams(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			up := simUpstream(t, sim.Model{Name: "fast", OutputTokens: 12}, sim.Model{Name: "slow", OutputTokens: 400, TokensPerSecond: 20})
			storeDSN := dsn(t)
			cfgPath := filepath.Join(t.TempDir(), "crash.yaml")
			os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
store: %q
master_key: %s
budgets: {reservation_ttl: 2s}
providers:
  - {name: up, type: openai, base_url: %s/v1, api_key: sk-up, models: [fast, slow]}
prices:
  - {model: up/fast, currency: CNY, input: 1, output: 2}
  - {model: up/slow, currency: CNY, input: 1, output: 2}
`, storeDSN, testKey, up.URL)), 0o600)

			cmd, url := childGateway(t, cfgPath)
			g := &gatewayProc{URL: url}
			_, key := createKey(t, g, `{"name":"crash","project":"p","budget":{"amount":100,"currency":"CNY","period":"total"}}`)

			type result struct {
				done       bool
				completion int
			}
			results := make([]result, 50)
			var fastDone sync.WaitGroup
			var all sync.WaitGroup
			for i := 0; i < 50; i++ {
				model := "up/slow"
				if i%2 == 0 {
					model = "up/fast"
					fastDone.Add(1)
				}
				all.Add(1)
				go func(i int, model string) {
					defer all.Done()
					if model == "up/fast" {
						defer fastDone.Done()
					}
					body := fmt.Sprintf(`{"model":%q,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream %d"}]}`, model, i)
					req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+key)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return
					}
					defer resp.Body.Close()
					sc := bufio.NewScanner(resp.Body)
					for sc.Scan() {
						line := strings.TrimPrefix(sc.Text(), "data: ")
						if line == "[DONE]" {
							results[i].done = true
						}
						var c struct {
							Usage *struct {
								CompletionTokens int `json:"completion_tokens"`
							}
						}
						if json.Unmarshal([]byte(line), &c) == nil && c.Usage != nil {
							results[i].completion = c.Usage.CompletionTokens
						}
					}
				}(i, model)
			}
			fastDone.Wait()
			time.Sleep(300 * time.Millisecond) // the finished streams settle
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			all.Wait()

			_, _ = childGateway(t, cfgPath) // the restart; its reconciler cleans up
			st, err := openStore(context.Background(), storeDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			waitUntil(t, 15*time.Second, "reservations released", func() bool {
				n, err := st.OpenReservations(context.Background())
				return err == nil && n == 0
			})

			completed, seen := 0, 0
			for _, r := range results {
				if r.done {
					completed++
					seen += r.completion
				}
			}
			if completed < 25 || completed == 50 {
				t.Fatalf("%d streams completed; the kill should fall between the fast and the slow ones", completed)
			}
			// The completed streams are billed from their usage; the killed
			// ones from the outbox, for what they delivered, flagged.
			rows, _, cost := ledgerRows(t, storeDSN)
			exact, crashed, completion := 0, 0, int64(0)
			for _, r := range rows {
				switch {
				case r.Status == "ok" && !r.Estimated:
					exact++
					completion += r.CompletionTokens
				case r.Status == ledger.StatusCrashed && r.Estimated:
					crashed++
				default:
					t.Errorf("unexpected record %+v", r)
				}
			}
			if exact != completed || completion != int64(seen) || crashed != 50-completed {
				t.Errorf("ledger holds %d exact records with %d completion tokens and %d crashed; %d streams completed with %d reported, %d were killed",
					exact, completion, crashed, completed, seen, 50-completed)
			}
			keys, _ := st.ListKeys(context.Background())
			w, _ := st.BudgetWindow(context.Background(), keys[0].Budget.ID, ledger.PeriodStart(ledger.PeriodTotal, time.Now()))
			if w.Reserved != 0 || w.Spent != cost {
				t.Errorf("budget window %+v, ledger cost %d", w, cost)
			}
		})
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
