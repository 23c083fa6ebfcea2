package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/status"
)

const cascadeConfig = `
store: STORE
master_key: %s
providers:
  - name: sim
    type: sim
    sim:
      seed: 3
      tasks: %s
      models:
        - {name: nano, skills: {arithmetic: 0}}
        - {name: max, skills: {arithmetic: 1}}
prices:
  - {model: sim/nano, currency: USD, input: 1, output: 2}
  - {model: sim/max, currency: USD, input: 50, output: 200}
models:
  - name: sums
    targets: [sim/nano, sim/max]
    route:
      ability: {suite: sums, quality: 0.95, verify: regex, pattern: '^\s*\d+\s*$'}
`

// TestCascadeAndFeedbackOverHTTP: a cascade route whose cheap target
// answers badly escalates, the client gets the checked answer, and both
// attempts are in the ledger (the first rejected); then a verdict on that
// request is taken from its own project's key only, bounded and strict.
func TestCascadeAndFeedbackOverHTTP(t *testing.T) {
	dir := t.TempDir()
	item := eval.Item{ID: "s1", Tags: []string{"arithmetic"}, Expected: json.RawMessage(`"13"`),
		Messages: []llm.Message{{Role: "user", Content: llm.TextContent("Compute 3 * 4 + 1 and reply with the number only.")}}}
	b, _ := json.Marshal(item)
	tasks := filepath.Join(dir, "tasks.jsonl")
	if err := os.WriteFile(tasks, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, fmt.Sprintf(cascadeConfig, testKey, tasks))
	defer g.stop()
	_, key := createKey(t, g, `{"name": "mine", "project": "acme"}`)
	_, other := createKey(t, g, `{"name": "theirs", "project": "rival"}`)

	body, _ := json.Marshal(map[string]any{"model": "sums", "messages": item.Messages})
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("x-request-id", "sum-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cr struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &cr) != nil || len(cr.Choices) == 0 || cr.Choices[0].Message.Content != "13" {
		t.Fatalf("answer %d %s, want 13 from the escalation", resp.StatusCode, out)
	}
	id := resp.Header.Get("x-tidegate-request-id")

	st, err := openStore(context.Background(), g.store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	type row struct {
		Attempt       int
		Model, Status string
	}
	var rows []row
	for deadline := time.Now().Add(10 * time.Second); len(rows) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rs, err := st.UsageByClientRequestID(context.Background(), "sum-1")
		if err != nil {
			t.Fatal(err)
		}
		rows = rows[:0]
		for _, r := range rs {
			rows = append(rows, row{r.Attempt, r.Model, r.Status})
		}
	}
	if d := cmp.Diff([]row{{1, "nano", "rejected"}, {2, "max", "ok"}}, rows); d != "" {
		t.Errorf("ledger rows (-want +got):\n%s", d)
	}

	// A verdict names its route from the request log, which is written in
	// batches after the answer: the admin API answers from the batch not yet
	// written, and the verdict below must still find its route (the
	// feedback handler flushes the log first).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if status, _ := admin(t, g, http.MethodGet, "/admin/requests/"+id, ""); status == http.StatusOK {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("request %s not logged: %d", id, status)
		}
	}
	feedback := func(key, body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/feedback", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	cases := []struct {
		name, key, body string
		status          int
	}{
		{"by our id", key, fmt.Sprintf(`{"request_id": %q, "score": 1}`, id), http.StatusCreated},
		{"by the client's label", key, `{"request_id": "sum-1", "score": 0.5}`, http.StatusCreated},
		{"another project's key", other, `{"request_id": "sum-1", "score": 0}`, http.StatusNotFound},
		{"score above one", key, `{"request_id": "sum-1", "score": 1.5}`, http.StatusBadRequest},
		{"score missing", key, `{"request_id": "sum-1"}`, http.StatusBadRequest},
		{"score a string", key, `{"request_id": "sum-1", "score": "1"}`, http.StatusBadRequest},
		{"unknown field", key, `{"request_id": "sum-1", "score": 1, "comment": "x"}`, http.StatusBadRequest},
		{"id not a label", key, `{"request_id": "a b", "score": 1}`, http.StatusBadRequest},
	}
	for _, c := range cases {
		status, got := feedback(c.key, c.body)
		if status != c.status {
			t.Errorf("%s: %d %v, want %d", c.name, status, got, c.status)
		}
		if status == http.StatusCreated && (got["target"] != "sim/max" || got["route"] != "sums") {
			t.Errorf("%s: verdict on %v of %v, want sim/max of sums", c.name, got["target"], got["route"])
		}
	}
	// The two verdicts taken are the route's live quality, in tidegate status.
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"status", "--config", g.config, "--url", g.URL, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("status: exit %d %s", code, stderr.String())
	}
	var rep status.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]ability.LiveReport{{Route: "sums", Quality: 0.75, Verdicts: 2}}, rep.Routes); d != "" {
		t.Errorf("live quality in status (-want +got):\n%s", d)
	}
	var text bytes.Buffer
	printLiveQuality(&text, rep.Routes)
	if want := "ability route  live quality  verdicts  demoted targets\nsums           75.0%         2         0\n"; text.String() != want {
		t.Errorf("status table:\n%s\nwant:\n%s", text.String(), want)
	}
}
