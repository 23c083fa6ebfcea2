package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t testing.TB, path string, opts Options) *Outbox {
	t.Helper()
	o, err := Open(path, opts, discard())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// waitingIDs reopens the file, as the next process would, and lists what it must settle.
func reopened(t *testing.T, path string) []Tab {
	t.Helper()
	o := open(t, path, Options{})
	defer o.Close()
	return o.Waiting()
}

var ignoreOpened = cmpopts.IgnoreFields(Tab{}, "Opened")

// TestReopenKeepsUncommittedTabs: what a killed process left — tabs begun,
// noted, appended, handed to the drain — comes back waiting with its last
// note; committed tabs (a lazy commit too, once a later record carried it)
// do not come back; a torn last line is skipped.
func TestReopenKeepsUncommittedTabs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	o := open(t, path, Options{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(o.Begin("a", []byte(`{"intent":"a"}`)))
	must(o.Begin("d", []byte(`{"intent":"d"}`)))
	must(o.Append("d", []byte(`{"entry":1}`)))
	must(o.Commit("d")) // lazy: written with the next record
	must(o.Note("a", []byte(`{"p":1}`)))
	must(o.Note("a", []byte(`{"p":2}`)))
	must(o.Begin("b", []byte(`{"intent":"b"}`)))
	must(o.Append("b", []byte(`{"entry":1}`)))
	must(o.Wait("b"))
	must(o.Begin("c", []byte(`{"intent":"c"}`)))
	must(o.Commit("c"))
	// No Close: the process dies; then a write cut in the middle.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("0badc0de a d 1 {\"torn")
	f.Close()
	o.unlock()

	want := []Tab{
		{ID: "a", Begin: []byte(`{"intent":"a"}`), Note: []byte(`{"p":2}`), Waiting: true},
		{ID: "b", Begin: []byte(`{"intent":"b"}`), Records: [][]byte{[]byte(`{"entry":1}`)}, Waiting: true},
	}
	got := reopened(t, path)
	if diff := cmp.Diff(want, got, ignoreOpened, cmpopts.SortSlices(func(a, b Tab) bool { return a.ID < b.ID })); diff != "" {
		t.Errorf("waiting tabs (-want +got):\n%s", diff)
	}
	// Reopening compacted the file; it still holds the same tabs.
	if diff := cmp.Diff(want, reopened(t, path), ignoreOpened, cmpopts.SortSlices(func(a, b Tab) bool { return a.ID < b.ID })); diff != "" {
		t.Errorf("after a second reopen (-want +got):\n%s", diff)
	}
}

// TestDrainCommitsWhatSettles: a drain stops at the first failure and
// leaves that tab and the rest waiting; the next drain settles them; a
// settled tab never comes back.
func TestDrainCommitsWhatSettles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	o := open(t, path, Options{})
	for _, id := range []string{"a", "b", "c"} {
		if err := o.Begin(id, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		o.Wait(id)
	}
	down := errors.New("database down")
	var settled []string
	n, err := o.Drain(context.Background(), func(_ context.Context, tab Tab) error {
		if tab.ID == "b" {
			return down
		}
		settled = append(settled, tab.ID)
		return nil
	})
	if n != 1 || !errors.Is(err, down) {
		t.Fatalf("drain: %d, %v", n, err)
	}
	if waiting, _ := o.Stats(); waiting != 2 {
		t.Fatalf("%d waiting, want 2", waiting)
	}
	n, err = o.Drain(context.Background(), func(_ context.Context, tab Tab) error { settled = append(settled, tab.ID); return nil })
	if n != 2 || err != nil {
		t.Fatalf("second drain: %d, %v", n, err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, settled); diff != "" {
		t.Errorf("settled (-want +got):\n%s", diff)
	}
	o.Close()
	if got := reopened(t, path); len(got) != 0 {
		t.Errorf("settled tabs came back: %v", got)
	}
}

// TestBounds: past MaxPending open tabs, or MaxBytes of file that a
// compaction cannot shrink, Begin refuses with ErrFull; tabs already open
// still append, and a commit makes room again.
func TestBounds(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		data []byte
	}{
		{"pending", Options{MaxPending: 2}, []byte(`{}`)},
		{"bytes", Options{MaxBytes: 1 << 20}, make([]byte, 600<<10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.data {
				if tc.data[i] == 0 {
					tc.data[i] = 'x'
				}
			}
			o := open(t, filepath.Join(t.TempDir(), "outbox"), tc.opts)
			defer o.Close()
			for _, id := range []string{"a", "b"} {
				if err := o.Begin(id, tc.data); err != nil {
					t.Fatal(err)
				}
			}
			if err := o.Begin("c", []byte(`{}`)); !errors.Is(err, ErrFull) {
				t.Fatalf("Begin past the bound: %v, want ErrFull", err)
			}
			if err := o.Append("a", []byte(`{"entry":1}`)); err != nil {
				t.Fatalf("an open tab must still append: %v", err)
			}
			o.Commit("a")
			o.Commit("b")
			if err := o.Begin("c", []byte(`{}`)); err != nil {
				t.Fatalf("Begin after commits: %v", err)
			}
		})
	}
}

// TestOneProcessPerFile: a second outbox on the same path is refused.
func TestOneProcessPerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	o := open(t, path, Options{})
	defer o.Close()
	if _, err := Open(path, Options{}, discard()); err == nil {
		t.Fatal("a second outbox opened the same file")
	}
}

// BenchmarkRequestPath is what the outbox adds to a metered request on the
// request path: "answer" is a whole answer's bill (intent, entry, commit:
// two writes reaching the kernel, the commit riding on the next one, no
// fsync); "progress" is one progress note of a stream (one write, every 16
// chunks or 250 ms).
func BenchmarkRequestPath(b *testing.B) {
	intent := []byte(`{"request":"req_0123456789abcdef0123","key":"key_0123456789abcdef0123","project":"prj_0123456789abcdef0123","attempt":{"Target":{"Provider":"deepseek","Model":"deepseek-chat","Credential":""},"Number":1,"Usage":{"prompt_tokens":1200,"completion_tokens":0,"total_tokens":0},"Estimated":true,"Status":"crashed","Latency":0},"price_ref":"deepseek/deepseek-chat@2025-02-09","res":{"ID":"res_0123456789abcdef0123","Holds":[{"budget_id":"bud_0123456789abcdef0123","period_start":0,"amount":123456}],"ExpiresAt":"2026-01-01T00:00:00Z","Local":true}}`)
	note := []byte(`{"Target":{"Provider":"deepseek","Model":"deepseek-chat","Credential":""},"Number":1,"Usage":{"prompt_tokens":1200,"completion_tokens":64,"total_tokens":0},"Estimated":true,"Status":"","Latency":0}`)
	entry := []byte(`{"entry":{"RequestID":"req_0123456789abcdef0123","Attempt":1,"CreatedAt":"2026-01-01T00:00:00Z","KeyID":"key_0123456789abcdef0123","ProjectID":"prj_0123456789abcdef0123","Provider":"deepseek","Model":"deepseek-chat","PromptTokens":1187,"CompletionTokens":412,"Cost":3512,"Currency":"CNY","Priced":true,"Status":"ok","Latency":1234567,"PriceRef":"deepseek/deepseek-chat@2025-02-09"}}`)
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("tab_%04d", i)
	}
	b.Run("answer", func(b *testing.B) {
		o := open(b, filepath.Join(b.TempDir(), "outbox"), Options{})
		defer o.Close()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			id := ids[i%len(ids)]
			_ = o.Begin(id, intent)
			_ = o.Append(id, entry)
			_ = o.Commit(id)
		}
	})
	b.Run("progress", func(b *testing.B) {
		o := open(b, filepath.Join(b.TempDir(), "outbox"), Options{})
		defer o.Close()
		_ = o.Begin("tab", intent)
		b.ReportAllocs()
		for b.Loop() {
			_ = o.Note("tab", note)
		}
	})
}
