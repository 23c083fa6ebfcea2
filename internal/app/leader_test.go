package app

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

// TestLeaderOnly: of two replicas competing for the lock one leads; when
// it stops, the other takes over.
func TestLeaderOnly(t *testing.T) {
	dsn := pgtest.Fresh(t)
	key := time.Now().UnixNano() // a lock of this test's own: locks are per database
	var leading atomic.Int64
	started := make(chan string, 4)
	run := func(name string) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			leaderOnly(ctx, dsn, key, 50*time.Millisecond, slog.New(slog.DiscardHandler), func(ctx context.Context) {
				if n := leading.Add(1); n != 1 {
					t.Errorf("%d leaders at once", n)
				}
				started <- name
				<-ctx.Done()
				leading.Add(-1)
			})
		})
		return func() { cancel(); wg.Wait() }
	}
	stopA, stopB := run("a"), run("b")
	first := <-started
	time.Sleep(300 * time.Millisecond) // several of the other's retries: it must not lead meanwhile
	if first == "a" {
		stopA()
	} else {
		stopB()
	}
	select {
	case second := <-started:
		if second == first {
			t.Errorf("%s led twice", first)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no takeover within 10s of the leader stopping")
	}
	if first == "a" {
		stopB()
	} else {
		stopA()
	}
}
