package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/llm"
)

// abilityTasks is a task set of four kinds, n items each, numbered from
// first (a train set and a test set are different items).
func abilityTasks(first, n int) []eval.Item {
	sentiments := []struct{ text, label string }{
		{"the agent solved my problem in minutes, thank you", "positive"},
		{"I was charged twice and nobody answers my emails", "negative"},
		{"please update the billing address on file", "neutral"},
	}
	cities := []string{"Hangzhou", "Lisbon", "Nairobi", "Osaka", "Lima", "Oslo", "Perth", "Quito"}
	capitals := []struct{ country, capital string }{{"France", "Paris"}, {"Japan", "Tokyo"}, {"Kenya", "Nairobi"},
		{"Peru", "Lima"}, {"Norway", "Oslo"}, {"Egypt", "Cairo"}, {"Chile", "Santiago"}, {"Spain", "Madrid"}}
	var out []eval.Item
	add := func(id, kind, prompt, expected string) {
		exp, _ := json.Marshal(expected)
		out = append(out, eval.Item{ID: id, Tags: []string{kind}, Expected: exp,
			Messages: []llm.Message{{Role: "user", Content: llm.TextContent(prompt)}}})
	}
	for i := first; i < first+n; i++ {
		s := sentiments[i%3]
		add(fmt.Sprintf("cls-%d", i), "classification", fmt.Sprintf("Classify the sentiment of this customer ticket as positive, negative or neutral. Answer with the label only.\n\nTicket #%d: %s.", i, s.text), s.label)
		a, b, c := 17+i%83, 3+i%29, i%7
		add(fmt.Sprintf("ari-%d", i), "arithmetic", fmt.Sprintf("Compute %d * %d + %d and reply with the number only.", a, b, c), fmt.Sprint(a*b+c))
		city := cities[i%len(cities)]
		add(fmt.Sprintf("ext-%d", i), "extraction", fmt.Sprintf("Extract the customer's city from this note and reply with the city only.\n\nNote: customer %d from %s called about invoice %d.", i, city, 1000+i), city)
		cp := capitals[i%len(capitals)]
		add(fmt.Sprintf("sa-%d", i), "short_answer", fmt.Sprintf("Answer in one word: what is the capital of %s? (question %d)", cp.country, i), cp.capital)
	}
	return out
}

const abilityConfig = `
store: STORE
master_key: %s
providers:
  - name: sim
    type: sim
    sim:
      seed: 11
      tasks: %s
      models:
        - {name: nano, skills: {classification: 0.97, extraction: 0.5, arithmetic: 0.15, short_answer: 0.4}}
        - {name: mini, skills: {classification: 0.85, extraction: 0.97, arithmetic: 0.3, short_answer: 0.75}}
        - {name: pro, skills: {classification: 0.85, extraction: 0.8, arithmetic: 0.96, short_answer: 0.96}}
        - {name: max, skills: {classification: 0.97, extraction: 0.97, arithmetic: 0.97, short_answer: 0.97}}
# The demo prices times 1,000, so a call costs thousands of micro-dollars
# and the ledger's rounding is far below the differences measured.
prices:
  - {model: sim/nano, currency: USD, input: 50, output: 200}
  - {model: sim/mini, currency: USD, input: 150, output: 600}
  - {model: sim/pro, currency: USD, input: 500, output: 2000}
  - {model: sim/max, currency: USD, input: 5000, output: 20000}
models:
  - name: tickets
    targets: [sim/max, sim/pro, sim/mini, sim/nano]
    route:
      ability: {suite: tasks, quality: 0.95}
`

// answered is one item answered through the gateway and graded.
type answered struct {
	item  int
	score float64
}

// answerAll sends every item to model with key, 8 at a time, and grades
// the answers with the suite's graders.
func answerAll(t *testing.T, g *gatewayProc, key, model string, s *eval.Suite) []answered {
	t.Helper()
	out := make([]answered, len(s.Items))
	errs := make(chan error, len(s.Items))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range s.Items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			body, _ := json.Marshal(map[string]any{"model": model, "messages": s.Items[i].Messages})
			req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var cr llm.ChatResponse
			if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &cr) != nil || len(cr.Choices) == 0 {
				errs <- fmt.Errorf("%s item %s: %d %s", model, s.Items[i].ID, resp.StatusCode, b)
				return
			}
			c, err := s.Check(i)
			if err != nil {
				errs <- err
				return
			}
			r, err := c.Grade(context.Background(), cr.Choices[0].Message.Content.String(), nil)
			if err != nil {
				errs <- err
				return
			}
			out[i] = answered{item: i, score: r.Score}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// keyCost is a key's spending in the ledger, in micro-dollars, once its
// requests are all billed (a bill is written just after the answer).
func keyCost(t *testing.T, g *gatewayProc, keyID string, requests int) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, out := admin(t, g, http.MethodGet, "/admin/usage?group_by=key", "")
		data, _ := out["data"].([]any)
		for _, row := range data {
			r := row.(map[string]any)
			if group, _ := r["group"].(string); !strings.HasSuffix(group, "("+keyID+")") || int(r["requests"].(float64)) < requests { // "name (id)"
				continue
			}
			if r["unpriced_attempts"].(float64) != 0 {
				t.Fatalf("key %s has unpriced usage: %v", keyID, r)
			}
			return r["cost"].(float64) * 1e6
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %s: %d requests not all billed: %v", keyID, requests, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mean(as []answered) float64 {
	var s float64
	for _, a := range as {
		s += a.score
	}
	return s / float64(len(as))
}

// TestAbilityRouteAcceptance is issue 12's acceptance for routing: four sim
// models of different skill and price; an ability route learned from one
// task set reaches ≥ 95% of the best single model's quality on a different
// set at ≤ 20% of its cost, beats every random mix of the models at equal
// cost, and no single model but the dearest reaches that bar. Everything
// goes through HTTP; costs come from the ledger.
func TestAbilityRouteAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("sends ~2,800 requests through the gateway")
	}
	dir := t.TempDir()
	train := &eval.Suite{Name: "tasks", Grader: eval.GraderSpec{Type: eval.TypeExact, IgnoreCase: true}, Items: abilityTasks(0, 100)}
	test := &eval.Suite{Name: "held-out", Grader: train.Grader, Items: abilityTasks(10_000, 60)}
	var file bytes.Buffer
	for _, it := range append(append([]eval.Item{}, train.Items...), test.Items...) {
		it.Grader = &eval.GraderSpec{Type: eval.TypeExact, IgnoreCase: true}
		b, _ := json.Marshal(it)
		file.Write(append(b, '\n'))
	}
	tasks := filepath.Join(dir, "tasks.jsonl")
	if err := os.WriteFile(tasks, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*eval.Suite{train, test} {
		if err := eval.Validate(s, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Teach stands in for the store's results: no periodic refresh, which
	// would unlearn them from the empty store when the test runs past it.
	g := startGateway(t, fmt.Sprintf(abilityConfig, testKey, tasks), app.Options{AbilityRefresh: time.Hour})
	defer g.stop()
	route := g.run.Abilities["tickets"]
	if route == nil {
		t.Fatal("no ability route named tickets")
	}

	models := []string{"nano", "mini", "pro", "max"}
	// Training: each model answers the train set through the gateway;
	// graded, these are the per-item results an eval run would store.
	_, trainKey := createKey(t, g, `{"name":"train","project":"train"}`)
	var results []eval.ItemResult
	for _, m := range models {
		for _, a := range answerAll(t, g, trainKey, "sim/"+m, train) {
			it := train.Items[a.item]
			results = append(results, eval.ItemResult{Suite: "tasks", RunID: "run1", ItemID: it.ID, Messages: it.Messages,
				Tags: it.Tags, Model: "sim/" + m, Score: a.score})
		}
	}
	route.Teach(results)
	cal, ok := route.Calibration()
	if !ok || !cal.Met {
		t.Fatalf("calibration: %+v", cal)
	}

	// Held out: each model alone, and the route.
	quality, cost := map[string]float64{}, map[string]float64{}
	for _, m := range append(models, "tickets") {
		id, key := createKey(t, g, fmt.Sprintf(`{"name":%q,"project":%q}`, m, "arm-"+m))
		model := "sim/" + m
		if m == "tickets" {
			model = m
		}
		quality[m] = mean(answerAll(t, g, key, model, test))
		cost[m] = keyCost(t, g, id, len(test.Items)) / float64(len(test.Items))
	}
	best := "max"
	for _, m := range models {
		t.Logf("%-7s quality %.3f  cost/item %8.0f µ$", m, quality[m], cost[m])
		if quality[m] > quality[best] {
			best = m
		}
	}
	t.Logf("route   quality %.3f  cost/item %8.0f µ$ (%.1f%% of the best's quality at %.1f%% of its cost; threshold %.2f)",
		quality["tickets"], cost["tickets"], 100*quality["tickets"]/quality[best], 100*cost["tickets"]/cost[best], cal.Tau)

	if q, c := quality["tickets"]/quality[best], cost["tickets"]/cost[best]; q < 0.95 || c > 0.20 {
		t.Errorf("route: %.3f of the best's quality at %.3f of its cost; want ≥ 0.95 at ≤ 0.20", q, c)
	}
	for _, m := range models {
		if m != "max" && quality[m] >= 0.95*quality[best] && cost[m] <= 0.20*cost[best] {
			t.Errorf("single model %s reaches the bar alone: the set does not need routing", m)
		}
	}
	// The best random mix at the route's cost: two models, mixed so the
	// expected cost is the route's (a mix of more lies under a pair's line).
	mix := 0.0
	for _, a := range models {
		for _, b := range models {
			if ca, cb := cost[a], cost[b]; ca <= cost["tickets"] && cost["tickets"] <= cb && cb > ca {
				w := (cost["tickets"] - ca) / (cb - ca)
				mix = math.Max(mix, (1-w)*quality[a]+w*quality[b])
			}
		}
	}
	t.Logf("best random mix at the route's cost: quality %.3f", mix)
	if quality["tickets"] <= mix {
		t.Errorf("route quality %.3f does not beat a random mix at equal cost (%.3f)", quality["tickets"], mix)
	}

	// The choice and its reason are in the request record.
	resp := postChat(t, g.URL, fmt.Sprintf(`{"model":"tickets","messages":[{"role":"user","content":%q}]}`, test.Items[0].Messages[0].Content.String()))
	resp.Body.Close()
	id := resp.Header.Get("x-tidegate-request-id")
	var rec map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// The request log is written in the background.
		if status, out := admin(t, g, http.MethodGet, "/admin/requests/"+id, ""); status == http.StatusOK {
			rec = out
			break
		}
	}
	if why, _ := rec["route_reason"].(string); !strings.HasPrefix(why, "ability tasks: chose sim/") || !strings.Contains(why, " p=") {
		t.Errorf("request record's route_reason = %q", why)
	}
}
