package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/store"
)

// testFiles: a file's record round-trips; lists are per project (the master
// key sees all), newest first, paged by after; delete removes it.
func testFiles(t *testing.T, s *store.DB) {
	ctx := context.Background()
	at := time.Date(2026, 5, 21, 10, 0, 0, 0, time.UTC)
	for i, p := range []string{"p1", "p2", "p1", "p1"} {
		f := &batch.File{ID: fmt.Sprintf("file-%d", i), ProjectID: p, KeyID: "k", Purpose: batch.PurposeBatch, Filename: "in.jsonl",
			Bytes: int64(100 + i), Status: "processed", CreatedAt: at.Add(time.Duration(i) * time.Second)}
		if err := s.PutFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.File(ctx, "file-2")
	if err != nil {
		t.Fatal(err)
	}
	want := &batch.File{ID: "file-2", ProjectID: "p1", KeyID: "k", Purpose: batch.PurposeBatch, Filename: "in.jsonl", Bytes: 102, Status: "processed", CreatedAt: at.Add(2 * time.Second)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("file (-want +got):\n%s", d)
	}
	ids := func(q batch.ListQuery) []string {
		fs, err := s.Files(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range fs {
			out = append(out, f.ID)
		}
		return out
	}
	for _, tc := range []struct {
		q    batch.ListQuery
		want []string
	}{
		{batch.ListQuery{ProjectID: "p1", Limit: 10}, []string{"file-3", "file-2", "file-0"}},
		{batch.ListQuery{ProjectID: "p1", Limit: 1, After: "file-3"}, []string{"file-2"}},
		{batch.ListQuery{All: true, Limit: 10}, []string{"file-3", "file-2", "file-1", "file-0"}},
		{batch.ListQuery{ProjectID: "p1", Purpose: batch.PurposeBatchOutput, Limit: 10}, nil},
	} {
		if d := cmp.Diff(tc.want, ids(tc.q)); d != "" {
			t.Errorf("%+v (-want +got):\n%s", tc.q, d)
		}
	}
	if err := s.DeleteFile(ctx, "file-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.File(ctx, "file-2"); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("deleted file: %v", err)
	}
	if err := s.DeleteFile(ctx, "file-2"); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// testBatches: a batch round-trips; moves happen only from the statuses
// named; counts follow the items; results are written once even when two
// runs of an item race; ending pending items leaves running ones alone.
func testBatches(t *testing.T, s *store.DB) {
	ctx := context.Background()
	at := time.Date(2026, 5, 21, 10, 0, 0, 0, time.UTC)
	b := &batch.Batch{ID: "batch_1", ProjectID: "p1", KeyID: "k1", Models: []string{"chat"}, Endpoint: batch.EndpointChat, InputFileID: "file-1",
		CompletionWindow: "24h", Metadata: map[string]string{"job": "nightly"}, Status: batch.Validating, CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour)}
	if err := s.CreateBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.Batch(ctx, "batch_1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(b, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("batch (-want +got):\n%s", d)
	}
	if _, err := s.Batch(ctx, "batch_none"); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("missing batch: %v", err)
	}
	moved, err := s.UpdateBatch(ctx, "batch_1", []batch.Status{batch.InProgress}, batch.Update{Status: batch.Finalizing, At: at})
	if err != nil || moved {
		t.Fatalf("moved from a status it was not in: %v %v", moved, err)
	}
	if moved, err = s.UpdateBatch(ctx, "batch_1", []batch.Status{batch.Validating}, batch.Update{Status: batch.InProgress, At: at.Add(time.Second)}); err != nil || !moved {
		t.Fatalf("move to in_progress: %v %v", moved, err)
	}
	var items []batch.Item
	for i := 1; i <= 5; i++ {
		items = append(items, batch.Item{BatchID: "batch_1", Line: i, CustomID: fmt.Sprintf("c%d", i), Body: json.RawMessage(`{"model":"chat"}`)})
	}
	if err := s.AddItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := s.AddItems(ctx, items); err != nil { // again, after a crash
		t.Fatalf("adding items twice: %v", err)
	}
	open, err := s.OpenBatches(ctx)
	if err != nil || len(open) != 1 || open[0].Counts != (batch.Counts{Total: 5, Pending: 5}) {
		t.Fatalf("open batches: %+v %v", open, err)
	}
	// Two runs of item 1 race to write its result: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			// A start after the result is written is refused; that is fine.
			if _, err := s.StartItem(ctx, "batch_1", 1); err != nil {
				t.Error(err)
			}
			ok, err := s.FinishItem(ctx, "batch_1", 1, batch.Result{RequestID: fmt.Sprintf("req_%d", i), StatusCode: 200, Body: json.RawMessage(`{"n":1}`)})
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("item 1's result was written %d times, want once", wins.Load())
	}
	if ok, _ := s.StartItem(ctx, "batch_1", 1); ok {
		t.Error("a done item started again")
	}
	if ok, _ := s.StartItem(ctx, "batch_1", 2); !ok {
		t.Error("a pending item did not start")
	}
	if ok, _ := s.StartItem(ctx, "batch_1", 3); !ok {
		t.Error("a pending item did not start")
	}
	if _, err := s.FinishItem(ctx, "batch_1", 3, batch.Result{RequestID: "req_3", StatusCode: 429, Body: json.RawMessage(`{"error":{}}`)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.EndPendingItems(ctx, "batch_1", "batch_expired", "expired")
	if err != nil || n != 2 {
		t.Fatalf("ended %d pending items (%v), want 2", n, err)
	}
	got, _ = s.Batch(ctx, "batch_1")
	if want := (batch.Counts{Total: 5, Completed: 1, Failed: 3, Running: 1}); got.Counts != want {
		t.Errorf("counts %+v, want %+v", got.Counts, want)
	}
	it, err := s.Item(ctx, "batch_1", 4)
	if err != nil || it.Result == nil || it.Result.ErrCode != "batch_expired" {
		t.Fatalf("item 4: %+v %v", it, err)
	}
	page, err := s.Items(ctx, "batch_1", 1, 2)
	if err != nil || len(page) != 2 || page[0].Line != 2 || page[1].Line != 3 || page[0].Result != nil {
		t.Fatalf("items after line 1: %+v %v", page, err)
	}
	if moved, _ = s.UpdateBatch(ctx, "batch_1", []batch.Status{batch.InProgress}, batch.Update{Status: batch.Expired, At: at.Add(time.Hour),
		OutputFileID: "file-out", ErrorFileID: "file-err"}); !moved {
		t.Fatal("did not expire")
	}
	got, _ = s.Batch(ctx, "batch_1")
	if got.Status != batch.Expired || got.OutputFileID != "file-out" || got.ErrorFileID != "file-err" || !got.ExpiredAt.Equal(at.Add(time.Hour)) {
		t.Errorf("expired batch: %+v", got)
	}
	if open, _ = s.OpenBatches(ctx); len(open) != 0 {
		t.Errorf("a final batch is still open: %+v", open)
	}
	bs, err := s.Batches(ctx, batch.ListQuery{ProjectID: "p2", Limit: 10})
	if err != nil || len(bs) != 0 {
		t.Errorf("another project sees %d batches (%v)", len(bs), err)
	}
}

// testBatchLostItems: EndRunningItems answers exactly the items left
// running (none pending, none done), once, so their batch can finish.
func testBatchLostItems(t *testing.T, s *store.DB) {
	ctx := context.Background()
	at := time.Date(2026, 5, 21, 10, 0, 0, 0, time.UTC)
	b := &batch.Batch{ID: "batch_lost", ProjectID: "p1", KeyID: "k1", Endpoint: batch.EndpointChat, InputFileID: "file-1",
		CompletionWindow: "24h", Status: batch.InProgress, CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour)}
	if err := s.CreateBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	var items []batch.Item
	for i := 1; i <= 4; i++ {
		items = append(items, batch.Item{BatchID: b.ID, Line: i, CustomID: fmt.Sprintf("c%d", i), Body: json.RawMessage(`{"model":"chat"}`)})
	}
	if err := s.AddItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	// 1 done, 2 and 3 running (their jobs gone), 4 pending.
	for _, line := range []int{1, 2, 3} {
		if ok, err := s.StartItem(ctx, b.ID, line); err != nil || !ok {
			t.Fatalf("start %d: %v %v", line, ok, err)
		}
	}
	if _, err := s.FinishItem(ctx, b.ID, 1, batch.Result{RequestID: "req_1", StatusCode: 200, Body: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.EndRunningItems(ctx, b.ID, "batch_expired", "lost")
	if err != nil || n != 2 {
		t.Fatalf("ended %d running items (%v), want 2", n, err)
	}
	if n, err = s.EndRunningItems(ctx, b.ID, "batch_expired", "lost"); err != nil || n != 0 {
		t.Errorf("ended %d items the second time (%v), want 0", n, err)
	}
	got, err := s.Batch(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (batch.Counts{Total: 4, Completed: 1, Failed: 2, Pending: 1}); got.Counts != want {
		t.Errorf("counts %+v, want %+v", got.Counts, want)
	}
	var results []batch.Result
	for _, line := range []int{1, 2, 3} {
		it, err := s.Item(ctx, b.ID, line)
		if err != nil || it.Result == nil {
			t.Fatalf("item %d: %+v %v", line, it, err)
		}
		results = append(results, *it.Result)
	}
	want := []batch.Result{{RequestID: "req_1", StatusCode: 200, Body: json.RawMessage(`{}`)},
		{ErrCode: "batch_expired", ErrMessage: "lost"}, {ErrCode: "batch_expired", ErrMessage: "lost"}}
	if d := cmp.Diff(want, results); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	// A late result of a lost item does not overwrite its answer.
	if ok, _ := s.FinishItem(ctx, b.ID, 2, batch.Result{StatusCode: 200}); ok {
		t.Error("a lost item's answer was overwritten")
	}
}
