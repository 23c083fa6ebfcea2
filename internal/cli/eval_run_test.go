package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/evalrun"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/store"
)

// evalConfig writes a config whose upstream is a counted sim fleet served
// over HTTP, with prices, on the given store.
func evalConfig(t *testing.T, dsn string, models ...sim.Model) (path string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	h := sim.New("upstream", 7, models).Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chat/completions") {
			calls.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	var names, prices []string
	for i, m := range models {
		names = append(names, m.Name)
		prices = append(prices, fmt.Sprintf("  - {model: up/%s, currency: CNY, input: %d, output: %d}", m.Name, 100*(i+1), 1000*(i+1)))
	}
	path = filepath.Join(t.TempDir(), "evals.yaml")
	cfg := fmt.Sprintf("store: %q\nmaster_key: %s\nbudgets: {outbox: {path: %q}}\nproviders:\n  - {name: up, type: openai, base_url: %s/v1, api_key: sk-up, models: [%s]}\nprices:\n%s\n",
		dsn, testKey, filepath.Join(t.TempDir(), "outbox"), up.URL, strings.Join(names, ", "), strings.Join(prices, "\n"))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, calls
}

func runMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	code, out, errOut := runMainCode(t, args...)
	return out, errOut, code
}

// runMainCode runs Main with args: its exit code, stdout and stderr.
func runMainCode(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// checkRun checks a finished run against the store: every item×model graded
// once, each stored grade what the suite's grader gives the stored answer,
// and each model's cost the sum of the ledger rows of its results.
func checkRun(t *testing.T, st *store.DB, runID string, sc *evalrun.Scorecard) {
	t.Helper()
	ctx := context.Background()
	run, err := st.EvalRun(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	su, err := st.Suite(ctx, run.Suite)
	if err != nil {
		t.Fatal(err)
	}
	results, err := st.RunResults(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != eval.RunDone || len(results) != len(su.Items)*len(run.Models) {
		t.Fatalf("run %s: %d results of %d, want all, done", run.Status, len(results), len(su.Items)*len(run.Models))
	}
	seen := map[[2]string]bool{}
	index := map[string]int{}
	for i, it := range su.Items {
		index[it.ID] = i
	}
	costs := map[string]int64{}
	for _, r := range results {
		k := [2]string{r.ItemID, r.Model}
		if seen[k] {
			t.Errorf("%v graded twice", k)
		}
		seen[k] = true
		check, err := su.Check(index[r.ItemID])
		if err != nil {
			t.Fatal(err)
		}
		g, _ := check.Grade(ctx, r.Answer, nil)
		if r.Error == "" && g.Score != r.Score {
			t.Errorf("%v: stored score %v, the grader gives %v", k, r.Score, g.Score)
		}
		rows, err := st.UsageByClientRequestID(ctx, "eval:"+runID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range rows {
			if e.RequestID == r.RequestID {
				n++
				costs[r.Model] += e.Cost
			}
		}
		if n != 1 {
			t.Errorf("%v: %d ledger rows for its request, want 1", k, n)
		}
	}
	for _, m := range sc.Results {
		if want := float64(costs[m.Model]) / 1e6; m.Cost.Amount != want || want == 0 || m.Cost.Currency != "CNY" {
			t.Errorf("%s: scorecard cost %v %s, ledger %v CNY", m.Model, m.Cost.Amount, m.Cost.Currency, want)
		}
	}
}

// TestEvalRunEndToEnd: a suite run over two sim models from the CLI (table,
// JSON, files) and from the admin API, on both stores.
func TestEvalRunEndToEnd(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			cfg, calls := evalConfig(t, dsn(t), sim.Model{Name: "a", OutputTokens: 8}, sim.Model{Name: "b", OutputTokens: 30})
			if _, e, code := runMain(t, "eval", "add", "demo", "--builtin", "--config", cfg); code != 0 {
				t.Fatalf("eval add: %s", e)
			}
			if _, e, code := runMain(t, "eval", "run", "demo", "--models", "chat", "--config", cfg); code == 0 || !strings.Contains(e, "provider/model") {
				t.Errorf("a route name was accepted (it would fail over): %d %s", code, e)
			}
			outDir := t.TempDir()
			out, e, code := runMain(t, "eval", "run", "demo", "--models", "up/a,up/b", "--concurrency", "8", "--json", "--out", outDir, "--config", cfg)
			if code != 0 {
				t.Fatalf("eval run: %d %s", code, e)
			}
			if !strings.Contains(e, "graded 80/80 (100%)") {
				t.Errorf("no plain progress lines on a non-terminal stderr:\n%s", e)
			}
			var sc evalrun.Scorecard
			if err := json.Unmarshal([]byte(out), &sc); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if calls.Load() != 80 {
				t.Errorf("%d upstream calls for 40 items × 2 models", calls.Load())
			}
			st, err := app.OpenStore(context.Background(), mustLoad(t, cfg).Store)
			if err != nil {
				t.Fatal(err)
			}
			checkRun(t, st, sc.ID, &sc)
			svg, err := os.ReadFile(filepath.Join(outDir, "scorecard.svg"))
			if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("up/b")) {
				t.Errorf("scorecard.svg: %v %.200s", err, svg)
			}
			report, err := st.UsageReport(context.Background(), "purpose", time.Time{}, time.Time{})
			if err != nil || len(report) != 1 || report[0].Group != eval.PurposeEval {
				t.Errorf("usage by purpose = %+v, %v; want only eval spend", report, err)
			}
			st.Close()

			// The admin API: start, poll, read the items and the plot.
			g := startConfig(t, cfg)
			if status, _ := admin(t, g, http.MethodPost, "/admin/evals/demo/runs", `{"models":["up/a"],"extra":1}`); status != http.StatusBadRequest {
				t.Errorf("an unknown field: %d, want 400", status)
			}
			if status, _ := admin(t, g, http.MethodPost, "/admin/evals/nope/runs", `{"models":["up/a"]}`); status != http.StatusNotFound {
				t.Errorf("a missing suite: %d, want 404", status)
			}
			status, started := admin(t, g, http.MethodPost, "/admin/evals/demo/runs", `{"models":["up/a","up/b"],"concurrency":4}`)
			if status != http.StatusAccepted {
				t.Fatalf("start: %d %v", status, started)
			}
			id := started["id"].(string)
			var got evalrun.Scorecard
			for deadline := time.Now().Add(30 * time.Second); ; {
				body := adminBody(t, g, "/admin/evals/demo/runs/"+id)
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				if got.Status != eval.RunRunning || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got.Status != eval.RunDone || len(got.Results) != 2 || got.Results[0].Items != 40 {
				t.Fatalf("API run: %+v", got)
			}
			var items struct{ Data []eval.RunResult }
			if err := json.Unmarshal(adminBody(t, g, "/admin/evals/demo/runs/"+id+"/items"), &items); err != nil || len(items.Data) != 80 {
				t.Errorf("items: %d, %v", len(items.Data), err)
			}
			if plot := adminBody(t, g, "/admin/evals/demo/runs/"+id+"/plot.svg"); !bytes.HasPrefix(plot, []byte("<svg")) {
				t.Errorf("plot.svg: %.100s", plot)
			}
			if status, _ := admin(t, g, http.MethodGet, "/admin/evals/other/runs/"+id, ""); status != http.StatusNotFound {
				t.Errorf("a run read under another suite: %d, want 404", status)
			}
			st2 := g.run.App.Store
			checkRun(t, st2, id, &got)
		})
	}
}

func mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func adminBody(t *testing.T, g *gatewayProc, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.URL+path, nil)
	resp, err := http.DefaultClient.Do(authed(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

// TestEvalRunCrash: the CLI working a run is killed with SIGKILL mid-run;
// run again with the run's id it finishes: every item×model graded once,
// each result billed by one ledger row, and no ledger row without an
// upstream call behind it.
func TestEvalRunCrash(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			cfg, calls := evalConfig(t, dsn(t), sim.Model{Name: "a", OutputTokens: 20, TokensPerSecond: 200}, sim.Model{Name: "b", OutputTokens: 20, TokensPerSecond: 200})
			if _, e, code := runMain(t, "eval", "add", "demo", "--builtin", "--config", cfg); code != 0 {
				t.Fatalf("eval add: %s", e)
			}
			var stderr syncBuffer
			cmd := exec.Command(os.Args[0], "eval", "run", "demo", "--models", "up/a,up/b", "--concurrency", "4", "--lease", "2s", "--config", cfg)
			cmd.Env = append(os.Environ(), "TIDEGATE_TEST_MAIN=1")
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			st, err := app.OpenStore(context.Background(), mustLoad(t, cfg).Store)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			var runID string
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				runs, err := st.EvalRuns(ctx, "demo")
				if err != nil || len(runs) == 0 {
					continue
				}
				runID = runs[0].ID
				if rs, err := st.RunResults(ctx, runID); err == nil && len(rs) >= 12 {
					break
				}
			}
			if err := cmd.Process.Signal(os.Kill); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			before, err := st.RunResults(ctx, runID)
			if err != nil {
				t.Fatal(err)
			}
			if len(before) < 12 || len(before) >= 80 {
				t.Fatalf("killed with %d of 80 results stored: not mid-run\n%s", len(before), stderr.String())
			}
			out, e, code := runMain(t, "eval", "run", "demo", "--run", runID, "--lease", "2s", "--json", "--config", cfg)
			if code != 0 {
				t.Fatalf("resume: %d %s", code, e)
			}
			var sc evalrun.Scorecard
			if err := json.Unmarshal([]byte(out), &sc); err != nil {
				t.Fatal(err)
			}
			checkRun(t, st, runID, &sc)
			after, _ := st.RunResults(ctx, runID)
			kept := map[string]string{}
			for _, r := range after {
				kept[r.ItemID+"|"+r.Model] = r.RequestID
			}
			for _, r := range before {
				if kept[r.ItemID+"|"+r.Model] != r.RequestID {
					t.Errorf("%s × %s was graded again after the crash", r.ItemID, r.Model)
				}
			}
			rows, err := st.UsageByClientRequestID(ctx, "eval:"+runID)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(rows)) > calls.Load() || len(rows) < 80 {
				t.Errorf("%d ledger rows for %d upstream calls and 80 results", len(rows), calls.Load())
			}
			if extra := calls.Load() - 80; extra > 4 {
				t.Errorf("%d calls beyond one per item×model; at most the 4 in flight at the kill may repeat", extra)
			}
		})
	}
}

// TestEvalRunJudge: a judge item is graded by the configured judge model
// through the gateway; the judge's calls are billed apart (eval_judge),
// and a judge reply that is not the JSON asked for is a result's error.
func TestEvalRunJudge(t *testing.T) {
	cfg, calls := evalConfig(t, "sqlite:"+filepath.Join(t.TempDir(), "t.db"), sim.Model{Name: "a", OutputTokens: 8}, sim.Model{Name: "judge", OutputTokens: 12})
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "evals: {judge: up/judge}")
	f.Close()
	suite := filepath.Join(t.TempDir(), "j.jsonl")
	os.WriteFile(suite, []byte(`{"id": "j1", "messages": [{"role": "user", "content": "Greet"}], "expected": "a polite greeting", "grader": "judge"}
{"id": "j2", "messages": [{"role": "user", "content": "2+2?"}], "expected": "4"}
`), 0o600)
	if _, e, code := runMain(t, "eval", "add", "j", suite, "--config", cfg); code != 0 {
		t.Fatalf("eval add: %s", e)
	}
	out, e, code := runMain(t, "eval", "run", "j", "--models", "up/a", "--json", "--config", cfg)
	if code != 0 {
		t.Fatalf("eval run: %s", e)
	}
	var sc evalrun.Scorecard
	if err := json.Unmarshal([]byte(out), &sc); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d upstream calls, want 2 candidates' and 1 judge's", calls.Load())
	}
	st, err := app.OpenStore(context.Background(), mustLoad(t, cfg).Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	results, err := st.RunResults(context.Background(), sc.ID)
	if err != nil || len(results) != 2 {
		t.Fatalf("results %v, %v", results, err)
	}
	j1 := results[0]
	if j1.JudgeLabel == "" || j1.JudgeCostMicros <= 0 || !strings.Contains(j1.Error, "judge") || results[1].JudgeLabel != "" {
		t.Errorf("judged item %+v; exact item %+v", j1, results[1])
	}
	if got := sc.Results[0].JudgeCost.Amount; got != float64(j1.JudgeCostMicros)/1e6 {
		t.Errorf("scorecard judge cost %v, ledger %v", got, j1.JudgeCostMicros)
	}
	report, err := st.UsageReport(context.Background(), "purpose", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	purposes := map[string]int64{}
	for _, r := range report {
		purposes[r.Group] = r.Requests
	}
	if purposes[eval.PurposeEval] != 2 || purposes[eval.PurposeJudge] != 1 {
		t.Errorf("ledger requests by purpose %v, want eval 2, eval_judge 1", purposes)
	}
}

// TestEvalRunHandsBackItsLease: a process told to stop (SIGTERM, as in a
// rolling restart) hands its run's lease back, so another process resumes
// the run at once instead of after the lease (a minute here) lapses.
func TestEvalRunHandsBackItsLease(t *testing.T) {
	cfg, _ := evalConfig(t, "sqlite:"+filepath.Join(t.TempDir(), "t.db"), sim.Model{Name: "a", OutputTokens: 20, TokensPerSecond: 200}, sim.Model{Name: "b", OutputTokens: 20, TokensPerSecond: 200})
	if _, e, code := runMain(t, "eval", "add", "demo", "--builtin", "--config", cfg); code != 0 {
		t.Fatalf("eval add: %s", e)
	}
	var stderr syncBuffer
	cmd := exec.Command(os.Args[0], "eval", "run", "demo", "--models", "up/a,up/b", "--concurrency", "2", "--lease", "60s", "--config", cfg)
	cmd.Env = append(os.Environ(), "TIDEGATE_TEST_MAIN=1")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	st, err := app.OpenStore(context.Background(), mustLoad(t, cfg).Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var runID string
	waitUntil(t, 30*time.Second, "the run under way", func() bool {
		runs, err := st.EvalRuns(ctx, "demo")
		if err != nil || len(runs) == 0 {
			return false
		}
		runID = runs[0].ID
		rs, err := st.RunResults(ctx, runID)
		return err == nil && len(rs) >= 6
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if rs, _ := st.RunResults(ctx, runID); len(rs) >= 80 {
		t.Fatalf("the run finished before the SIGTERM\n%s", stderr.String())
	}
	start := time.Now()
	if _, e, code := runMain(t, "eval", "run", "demo", "--run", runID, "--lease", "60s", "--json", "--config", cfg); code != 0 {
		t.Fatalf("resume right after the stop: %d %s\n(the stopped process: %s)", code, e, stderr.String())
	}
	// A lease kept would hold the resume for its 60 s; the rest of the
	// run takes a few seconds.
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the resume took %v: it waited for the stopped process's lease to lapse", took)
	}
}
