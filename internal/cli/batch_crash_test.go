package cli

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// TestBatchCrash: tidegate is SIGKILLed in the middle of a batch and
// started again; the batch completes, and its output file answers every
// custom_id exactly once. On SQLite the restarted process takes back the
// jobs the dead one held at once; on PostgreSQL River's rescuer does, after
// twice batches.item_timeout (3s here) at its next pass (every 30s), so
// that run takes up to about 40s more.
func TestBatchCrash(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) { batchCrash(t, dsn(t), name == "postgres") })
	}
}

func batchCrash(t *testing.T, storeDSN string, postgres bool) {
	up := simUpstream(t, sim.Model{Name: "slow", OutputTokens: 30, TokensPerSecond: 100})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "batch.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
store: %q
master_key: %s
batches: {poll: 50ms, concurrency: 3, item_timeout: 3s, dir: %q}
budgets: {outbox: {path: %q}}
providers:
  - {name: up, type: openai, base_url: %s/v1, api_key: sk-up, models: [slow]}
prices:
  - {model: up/slow, currency: CNY, input: 1, output: 2}
`, storeDSN, testKey, filepath.Join(dir, "files"), filepath.Join(dir, "outbox"), up.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, url := childGateway(t, cfgPath)
	client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
	const n = 24
	f := upload(t, client, batchLines(n, "up/slow"))
	id := newBatch(t, client, f.ID, openai.BatchNewParamsEndpointV1ChatCompletions).ID
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := client.Batches.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if b.RequestCounts.Completed >= 6 {
			if b.RequestCounts.Completed >= n {
				t.Fatal("the batch finished before the kill")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the batch did not progress: %+v", b)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	_, url = childGateway(t, cfgPath)
	client = openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
	if !postgres {
		t.Cleanup(func() {
			if t.Failed() {
				dumpQueue(t, strings.TrimPrefix(storeDSN, "sqlite:"))
			}
		})
	}
	b := awaitBatch(t, client, id, 90*time.Second)
	if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != n {
		t.Fatalf("after the restart: status %s counts %+v", b.Status, b.RequestCounts)
	}
	seen := map[string]int{}
	for _, l := range fileLines(t, client, b.OutputFileID) {
		seen[l.CustomID]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("req-%d", i)]; c != 1 {
			t.Errorf("req-%d has %d output lines, want 1", i, c)
		}
	}
	if len(seen) != n {
		t.Errorf("%d custom_ids in the output, want %d", len(seen), n)
	}
	if postgres && itemReruns(t, storeDSN, id) == 0 {
		t.Error("no item was in flight at the kill: the rescue was not exercised")
	}
}

// dumpQueue logs the jobs and items not done, to explain a failure.
func dumpQueue(t *testing.T, path string) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Log(err)
		return
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, state, attempt, queue, args, coalesce(errors,'') FROM river_job WHERE state <> 'completed'`)
	if err != nil {
		t.Log(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, attempt int
		var state, queue, args, errs string
		rows.Scan(&id, &state, &attempt, &queue, &args, &errs)
		t.Logf("job %d %s attempt %d %s %s %s", id, state, attempt, queue, args, errs)
	}
	rows2, _ := db.Query(`SELECT line, state, attempts FROM batch_items WHERE state <> 'done'`)
	for rows2.Next() {
		var line, att int
		var st string
		rows2.Scan(&line, &st, &att)
		t.Logf("item %d %s %d", line, st, att)
	}
}
