package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/llm"
)

// pricesConfig: a cheap model as good as the dear one on classification
// and poor elsewhere, behind an ability route; two replicas share the store.
const pricesConfig = `
store: sqlite:%s
master_key: %s
budgets: {outbox: {path: %s}}
providers:
  - name: sim
    type: sim
    sim:
      seed: 5
      tasks: %s
      models:
        - {name: nano, skills: {classification: 0.97, extraction: 0.3, arithmetic: 0.1, short_answer: 0.3}}
        - {name: max, skills: {classification: 0.97, extraction: 0.97, arithmetic: 0.97, short_answer: 0.97}}
prices:
  - {model: sim/nano, currency: USD, input: 50, output: 200}
  - {model: sim/max, currency: USD, input: 5000, output: 20000}
models:
  - name: tickets
    targets: [sim/max, sim/nano]
    route:
      ability: {suite: tasks, quality: 0.95}
`

// chatWith sends a prompt to model with key: the target that answered and
// the usage billed.
func chatWith(t *testing.T, g *gatewayProc, key, model string, msgs []llm.Message) (string, llm.Usage) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "messages": msgs})
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var cr llm.ChatResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &cr) != nil || cr.Usage == nil {
		t.Fatalf("%s: %d %s", model, resp.StatusCode, b)
	}
	return resp.Header.Get(httpapi.HeaderRoute), *cr.Usage
}

// nanoShare is the share of the prompts the route sends to sim/nano.
func nanoShare(t *testing.T, g *gatewayProc, prompts [][]llm.Message) float64 {
	t.Helper()
	n := 0
	for _, m := range prompts {
		if route, _ := chatWith(t, g, testKey, "tickets", m); route == "sim/nano" {
			n++
		}
	}
	return float64(n) / float64(len(prompts))
}

func waitCalibrated(t *testing.T, g *gatewayProc) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := g.run.Abilities["tickets"].Calibration(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the ability route never learned from the stored run")
		}
	}
}

// TestPricePostMovesAbilityRoute is issue 12's acceptance for prices: a
// price posted to one replica that makes the cheap model dearer than the
// best moves its prompts away at once there and within the refresh on the
// other replica (short refresh periods stand in for the 10 s + 20 s), with
// no restart; the ledger bills the new price from its start.
func TestPricePostMovesAbilityRoute(t *testing.T) {
	dir := t.TempDir()
	train, heldOut := abilityTasks(0, 30), abilityTasks(10_000, 12)
	var file bytes.Buffer
	for _, it := range append(slices.Clone(train), heldOut...) {
		it.Grader = &eval.GraderSpec{Type: eval.TypeExact, IgnoreCase: true}
		b, _ := json.Marshal(it)
		file.Write(append(b, '\n'))
	}
	tasks := filepath.Join(dir, "tasks.jsonl")
	if err := os.WriteFile(tasks, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(name string) string {
		path := filepath.Join(dir, name+".yaml")
		yaml := fmt.Sprintf(pricesConfig, filepath.Join(dir, "t.db"), testKey, filepath.Join(dir, name+".outbox"), tasks)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// a rereads often; b only at the defaults (10 s, 20 s), so what moves
	// b within the test is the POST it took.
	a := startConfig(t, config("a"), app.Options{PriceRefresh: 50 * time.Millisecond, AbilityRefresh: 50 * time.Millisecond})

	suite, _ := json.Marshal(map[string]any{"name": "tasks", "grader": eval.GraderSpec{Type: eval.TypeExact, IgnoreCase: true}, "items": train})
	if status, out := admin(t, a, http.MethodPost, "/admin/evals", string(suite)); status != http.StatusCreated {
		t.Fatalf("suite: %d %v", status, out)
	}
	status, started := admin(t, a, http.MethodPost, "/admin/evals/tasks/runs", `{"models":["sim/max","sim/nano"]}`)
	if status != http.StatusAccepted {
		t.Fatalf("run: %d %v", status, started)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, run := admin(t, a, http.MethodGet, "/admin/evals/tasks/runs/"+started["id"].(string), "")
		if run["status"] == eval.RunDone {
			break
		}
		if run["status"] != eval.RunRunning || time.Now().After(deadline) {
			t.Fatalf("run: %v", run)
		}
	}
	waitCalibrated(t, a)
	b := startConfig(t, config("b"), app.Options{})
	waitCalibrated(t, b)

	var prompts [][]llm.Message
	for _, it := range heldOut {
		if slices.Contains(it.Tags, "classification") {
			prompts = append(prompts, it.Messages)
		}
	}
	for _, g := range []*gatewayProc{a, b} {
		if share := nanoShare(t, g, prompts); share < 0.75 {
			t.Fatalf("before the price change the route sends %.2f of classification prompts to the cheap model; want most", share)
		}
	}
	beforeID, beforeKey := createKey(t, a, `{"name":"before","project":"p"}`)
	_, oldUsage := chatWith(t, a, beforeKey, "sim/nano", prompts[0])

	// The cheap model becomes ten times dearer than the best, through b.
	posted := time.Now()
	status, out := admin(t, b, http.MethodPost, "/admin/prices", `{"model":"sim/nano","currency":"USD","input":50000,"output":200000}`)
	if status != http.StatusCreated {
		t.Fatalf("POST /admin/prices: %d %v", status, out)
	}
	if share := nanoShare(t, b, prompts); share > 0.1 {
		t.Errorf("on the replica that took the POST the cheap model still gets %.2f of the prompts", share)
	}
	var moved time.Duration
	for {
		if share := nanoShare(t, a, prompts); share <= 0.1 {
			moved = time.Since(posted)
			break
		}
		if time.Since(posted) > 60*time.Second {
			t.Fatal("the other replica's route did not move within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the other replica moved its prompts %v after the POST", moved.Round(time.Millisecond))

	afterID, afterKey := createKey(t, a, `{"name":"after","project":"p"}`)
	_, newUsage := chatWith(t, a, afterKey, "sim/nano", prompts[0])
	for _, c := range []struct {
		id          string
		u           llm.Usage
		input, outp float64
	}{{beforeID, oldUsage, 50, 200}, {afterID, newUsage, 50000, 200000}} {
		want := float64(c.u.PromptTokens)*c.input + float64(c.u.CompletionTokens)*c.outp // micro-dollars
		if got := keyCost(t, a, c.id, 1); math.Abs(got-want) > 1 {
			t.Errorf("key %s billed %.0f µ$, want %.0f (input %v, output %v per 1M)", c.id, got, want, c.input, c.outp)
		}
	}

	_, listed := admin(t, a, http.MethodGet, "/admin/prices", "")
	if data, _ := listed["data"].([]any); len(data) != 1 || data[0].(map[string]any)["model"] != "sim/nano" {
		t.Errorf("GET /admin/prices = %v", listed)
	}
	stdout, stderr, code := runMain(t, "prices", "--config", a.config, "--provider", "sim")
	var stored []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasSuffix(strings.TrimSpace(line), "stored") {
			stored = append(stored, strings.Join(strings.Fields(line)[:2], "/"))
		}
	}
	if code != 0 || !slices.Equal(stored, []string{"sim/nano"}) {
		t.Errorf("tidegate prices: code %d, stored rows %v\n%s%s", code, stored, stdout, stderr)
	}
}
