package cli

import (
	"context"
	"database/sql"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tidegate/tidegate/internal/ledger"
)

// batchSurvivesKill: a batch runs on every replica (their River clients
// share the PostgreSQL queue); replica victim is SIGKILLed with items in
// flight; the others finish the batch (River's rescuer hands them the dead
// replica's jobs after twice batches.item_timeout); the output answers each
// custom_id once; and once the victim is back (its outbox settles the calls
// it had open), the ledger holds one row per call made: an exact row for
// each answer in the output, a crashed estimate for each attempt the kill
// cut, none twice.
func batchSurvivesKill(t *testing.T, c *cluster, dsn string, victim int) {
	const n, tries = 36, 3
	var (
		keyID  string
		client openai.Client
		b      *openai.Batch
		reruns int
	)
	// The kill must cut an item on the victim; on a loaded machine its
	// River client may not have fetched one yet, so the scenario runs again
	// (a fresh key and batch) up to tries times before that is a failure.
	for try := 1; ; try++ {
		var key string
		keyID, key = createKey(t, &gatewayProc{URL: c.front.URL}, fmt.Sprintf(`{"name":"batch-kill-%d","project":"replicas-batch"}`, try))
		client = openai.NewClient(option.WithBaseURL(c.front.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
		f := upload(t, client, batchLines(n, "sim/batchy"))
		id := newBatch(t, client, f.ID, openai.BatchNewParamsEndpointV1ChatCompletions).ID
		waitUntil(t, 60*time.Second, "the batch under way", func() bool {
			b, err := client.Batches.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if b.RequestCounts.Completed >= n {
				t.Fatal("the batch finished before the kill")
			}
			return b.RequestCounts.Completed >= 6
		})
		_ = c.kill(victim, syscall.SIGKILL)
		b = awaitBatch(t, client, id, 120*time.Second)
		reruns = itemReruns(t, dsn, id)
		c.start(victim) // its outbox settles the calls it had open
		c.awaitReady()
		if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != n || b.RequestCounts.Failed != 0 {
			t.Fatalf("after the kill: status %s, counts %+v", b.Status, b.RequestCounts)
		}
		if reruns > 0 {
			break
		}
		if try == tries {
			t.Fatalf("no item was in flight on replica %d when it was killed, in %d tries", victim, tries)
		}
		t.Logf("try %d: no item was in flight on replica %d when it was killed; again", try, victim)
	}
	answered := map[string]string{} // request id → custom_id
	seen := map[string]int{}
	for _, l := range fileLines(t, client, b.OutputFileID) {
		seen[l.CustomID]++
		if l.Response == nil || l.Response.StatusCode != 200 {
			t.Errorf("%s: not answered 200: %+v", l.CustomID, l)
			continue
		}
		answered[l.Response.RequestID] = l.CustomID
	}
	for i := range n {
		if k := seen[fmt.Sprintf("req-%d", i)]; k != 1 {
			t.Errorf("req-%d has %d output lines, want 1", i, k)
		}
	}
	waitUntil(t, 30*time.Second, "every call billed", func() bool { return len(keyLedger(t, dsn, keyID)) >= n+reruns })
	rows := keyLedger(t, dsn, keyID)
	billed := map[string]int{}
	crashed := 0
	for _, r := range rows {
		billed[r.request]++
		switch {
		case r.status == "ok" && !r.estimated:
			if _, ok := answered[r.request]; !ok {
				t.Errorf("an exact bill for a call whose answer is not in the output: %+v", r)
			}
		case r.status == ledger.StatusCrashed && r.estimated:
			crashed++
		default:
			t.Errorf("unexpected record %+v", r)
		}
	}
	for req, k := range billed {
		if k != 1 {
			t.Errorf("request %s billed %d times", req, k)
		}
	}
	for req, cid := range answered {
		if billed[req] != 1 {
			t.Errorf("%s's answer (request %s) is not billed", cid, req)
		}
	}
	if len(rows) != n+reruns || crashed != reruns {
		t.Errorf("ledger: %d rows, %d crashed; %d answers, %d attempts cut by the kill", len(rows), crashed, n, reruns)
	}
	t.Logf("%d items, %d attempts cut by the kill and run again elsewhere", n, reruns)
}

// itemReruns counts the attempts of a batch's items beyond the first
// (here: the attempts a kill cut, the items being always answered).
func itemReruns(t *testing.T, dsn, batchID string) int {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COALESCE(SUM(attempts - 1), 0) FROM batch_items WHERE batch_id = $1`, batchID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
