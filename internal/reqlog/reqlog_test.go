package reqlog_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/store/sqlite"
	"github.com/tidegate/tidegate/internal/timing"
)

// TestLogFindsAndRedacts: a record is found while queued and once written,
// and its bodies are stored redacted either way.
func TestLogFindsAndRedacts(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := reqlog.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), reqlog.Options{Secrets: func() []string { return []string{"configured-key-123"} }})
	rt := timing.New("req-1", time.Now(), true)
	rt.Input([]byte(`{"messages":[{"content":"use configured-key-123 and sk-abcdefgh1234"}]}`))
	rt.Output("the token is ghp_")
	rt.Output("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123") // split across two deltas
	rec := rt.Finish(timing.Meta{Endpoint: "/v1/chat/completions", Status: 200}, time.Millisecond)
	l.ObserveRequest(ctx, &rec, nil)
	for _, when := range []string{"queued", "written"} {
		got, err := l.Request(ctx, "req-1")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		for _, leak := range []string{"configured-key-123", "sk-abcdefgh1234", "ghp_ABCDEFGH"} {
			if strings.Contains(got.RequestBody+got.ResponseBody, leak) {
				t.Errorf("%s: %q kept: %q / %q", when, leak, got.RequestBody, got.ResponseBody)
			}
		}
		if !strings.Contains(got.ResponseBody, "the token is [redacted]") {
			t.Errorf("%s: answer %q", when, got.ResponseBody)
		}
		l.Flush(ctx)
	}
	if _, err := l.Request(ctx, "nope"); !errors.Is(err, reqlog.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

func BenchmarkFlush(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "t.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	l := reqlog.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), reqlog.Options{})
	rt := timing.New("req", time.Now(), false)
	rt.Describe("chat", true)
	_, a := rt.StartAttempt(context.Background(), "up/m", 1)
	a.Token()
	a.End("")
	rec := rt.Finish(timing.Meta{Endpoint: "/v1/chat/completions", Route: "up/m", Status: 200}, time.Millisecond)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := rec
		i++
		r.Received = r.Received.Add(time.Duration(i))
		l.ObserveRequest(context.Background(), &r, nil)
		if i%100 == 0 {
			l.Flush(context.Background())
		}
	}
}

// TestLabelNeverShadowsAWrittenRequest: a request's record is written; a
// later one labelled with its id is still queued. A lookup by the id finds
// the request itself, and by a plain label the newest carrying it.
func TestLabelNeverShadowsAWrittenRequest(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := reqlog.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), reqlog.Options{})
	observe := func(id, label string) {
		rt := timing.New(id, time.Now(), true)
		rec := rt.Finish(timing.Meta{Endpoint: "/v1/chat/completions", Status: 200}, time.Millisecond)
		h := http.Header{}
		if label != "" {
			h.Set("x-request-id", label)
		}
		l.ObserveRequest(ctx, &rec, h)
	}
	observe("req_victim", "")
	observe("req_old", "mine")
	l.Flush(ctx)
	observe("req_shadow", "req_victim") // another tenant claims the victim's id
	observe("req_new", "mine")
	for _, c := range []struct{ lookup, want string }{
		{"req_victim", "req_victim"}, {"req_shadow", "req_shadow"}, {"mine", "req_new"},
	} {
		got, err := l.Request(ctx, c.lookup)
		if err != nil || got.ID != c.want {
			t.Errorf("lookup %q: %v, %v; want %s", c.lookup, got, err, c.want)
		}
	}
	l.Flush(ctx)
	for _, c := range []struct{ lookup, want string }{{"req_victim", "req_victim"}, {"mine", "req_new"}} {
		got, err := l.Request(ctx, c.lookup)
		if err != nil || got.ID != c.want {
			t.Errorf("written, lookup %q: %v, %v; want %s", c.lookup, got, err, c.want)
		}
	}
}

// gatedStore holds a batch's write until released: the moment a record has
// left the queue and is not yet in the store.
type gatedStore struct {
	reqlog.Store
	entered, release chan struct{}
}

func (g gatedStore) InsertRequestLogs(ctx context.Context, rows []reqlog.Row) error {
	close(g.entered)
	<-g.release
	return g.Store.InsertRequestLogs(ctx, rows)
}

// TestFoundWhileBeingWritten: a record being written is found all the same.
func TestFoundWhileBeingWritten(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := gatedStore{Store: st, entered: make(chan struct{}), release: make(chan struct{})}
	l := reqlog.New(g, slog.New(slog.NewTextHandler(io.Discard, nil)), reqlog.Options{})
	rt := timing.New("req_inflight", time.Now(), true)
	rec := rt.Finish(timing.Meta{Endpoint: "/v1/chat/completions", Status: 200}, time.Millisecond)
	l.ObserveRequest(ctx, &rec, http.Header{"X-Request-Id": {"label-1"}})
	done := make(chan struct{})
	go func() { l.Flush(ctx); close(done) }()
	<-g.entered
	for _, lookup := range []string{"req_inflight", "label-1"} {
		if got, err := l.Request(ctx, lookup); err != nil || got.ID != "req_inflight" {
			t.Errorf("lookup %q while written: %v, %v", lookup, got, err)
		}
	}
	close(g.release)
	<-done
	if got, err := l.Request(ctx, "req_inflight"); err != nil || got.ID != "req_inflight" {
		t.Errorf("once written: %v, %v", got, err)
	}
}
