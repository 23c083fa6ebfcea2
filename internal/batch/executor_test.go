package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/files"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// TestLostRunningItemsEnd: an item left running with no job behind it
// (its process killed on the last attempt) holds its batch open only
// until no attempt can be live, ExpiresAt (or the cancel) + 2×ItemTimeout;
// then it is answered and the batch finishes with its files.
func TestLostRunningItemsEnd(t *testing.T) {
	const timeout = time.Minute
	for _, tc := range []struct {
		name   string
		status batch.Status
		// now is how far past the batch's end the loop looks.
		now  time.Duration
		want batch.Status
		code string
	}{
		{"expired, attempts may be live", batch.InProgress, 2*timeout - time.Second, batch.InProgress, ""},
		{"expired, no attempt can be live", batch.InProgress, 2 * timeout, batch.Expired, "batch_expired"},
		{"cancelled, attempts may be live", batch.Cancelling, time.Minute, batch.Cancelling, ""},
		{"cancelled, no attempt can be live", batch.Cancelling, 2*timeout + time.Second, batch.Cancelled, "batch_cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			disk, err := files.NewDisk(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			created := time.Date(2026, 5, 21, 10, 0, 0, 0, time.UTC)
			expires := created.Add(24 * time.Hour)
			ended := expires // expiry ends an in-progress batch; the cancel, one cancelled
			if tc.status == batch.Cancelling {
				ended = created.Add(time.Hour)
			}
			b := &batch.Batch{ID: "batch_lost", ProjectID: "p1", KeyID: "k1", Endpoint: batch.EndpointChat, InputFileID: "file-in",
				CompletionWindow: "24h", Status: batch.Validating, CreatedAt: created, ExpiresAt: expires}
			if err := st.CreateBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpdateBatch(ctx, b.ID, []batch.Status{batch.Validating}, batch.Update{Status: batch.InProgress, At: created}); err != nil {
				t.Fatal(err)
			}
			if tc.status == batch.Cancelling {
				if _, err := st.UpdateBatch(ctx, b.ID, []batch.Status{batch.InProgress}, batch.Update{Status: batch.Cancelling, At: ended}); err != nil {
					t.Fatal(err)
				}
			}
			var items []batch.Item
			for i := 1; i <= 3; i++ {
				items = append(items, batch.Item{BatchID: b.ID, Line: i, CustomID: fmt.Sprintf("c%d", i), Body: json.RawMessage(`{"model":"chat"}`)})
			}
			if err := st.AddItems(ctx, items); err != nil {
				t.Fatal(err)
			}
			// Item 1 answered, item 2 lost while running, item 3 never sent.
			for _, line := range []int{1, 2} {
				if _, err := st.StartItem(ctx, b.ID, line); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.FinishItem(ctx, b.ID, 1, batch.Result{RequestID: "req_1", StatusCode: 200, Body: json.RawMessage(`{"ok":true}`)}); err != nil {
				t.Fatal(err)
			}
			e := &batch.Executor{Store: st, Files: disk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				ItemTimeout: timeout, Now: func() time.Time { return ended.Add(tc.now) }}
			e.Init()
			e.Step(ctx)
			e.Step(ctx) // a second look changes nothing more
			got, err := st.Batch(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want {
				t.Fatalf("status %s, want %s (counts %+v)", got.Status, tc.want, got.Counts)
			}
			it, err := st.Item(ctx, b.ID, 2)
			if err != nil {
				t.Fatal(err)
			}
			if tc.code == "" {
				if it.State != batch.ItemRunning {
					t.Errorf("item 2 ended while an attempt may be live: %+v", it)
				}
				return
			}
			if it.Result == nil || it.Result.ErrCode != tc.code {
				t.Fatalf("item 2: %+v", it)
			}
			if got.Counts != (batch.Counts{Total: 3, Completed: 1, Failed: 2}) || got.OutputFileID == "" || got.ErrorFileID == "" {
				t.Errorf("finished batch: %+v", got)
			}
			f, err := disk.Open(ctx, got.ErrorFileID)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var lines []batch.OutputLine
			for dec := json.NewDecoder(f); dec.More(); {
				var l batch.OutputLine
				if err := dec.Decode(&l); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, l)
			}
			if len(lines) != 2 || lines[0].CustomID != "c2" || lines[0].Error == nil || lines[0].Error.Code != tc.code {
				t.Errorf("error file: %+v", lines)
			}
		})
	}
}
