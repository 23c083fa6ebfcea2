// Package ratelimittest is the conformance suite every rate-limit backend
// passes: memory, Redis and PostgreSQL.
package ratelimittest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ratelimit"
)

// Open returns a fresh backend counting over window, isolated from other tests.
type Open func(t *testing.T, window time.Duration) ratelimit.Backend

var seq atomic.Int64

func key(t *testing.T) string { return fmt.Sprintf("key-%d-%d", time.Now().UnixNano(), seq.Add(1)) }

// eventually polls cond for up to 10s: expiry has no signal to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Run runs the suite; shared says the backend counts across replicas.
func Run(t *testing.T, open Open, shared bool) {
	ctx := context.Background()
	const hour = time.Hour

	t.Run("rpm", func(t *testing.T) {
		b, k, other := open(t, time.Minute), key(t), key(t)
		for i := range 3 {
			if v, err := b.Admit(ctx, k, ratelimit.Limits{RPM: 3}, "", hour); err != nil || v.Limit != "" {
				t.Fatalf("request %d: %+v, %v", i, v, err)
			}
		}
		v, err := b.Admit(ctx, k, ratelimit.Limits{RPM: 3}, "", hour)
		if err != nil || v.Limit != "rpm" || v.Wait <= 0 || v.Wait > time.Minute+time.Second {
			t.Errorf("fourth: %+v, %v; want rpm within a minute", v, err)
		}
		if v, _ := b.Admit(ctx, other, ratelimit.Limits{RPM: 3}, "", hour); v.Limit != "" {
			t.Errorf("another key was refused: %+v", v)
		}
	})

	t.Run("refused requests are not counted", func(t *testing.T) {
		b, k := open(t, time.Minute), key(t)
		lease := func(i int) string { return fmt.Sprintf("l%d-%s", i, k) }
		if v, _ := b.Admit(ctx, k, ratelimit.Limits{RPM: 2, MaxStreams: 1}, lease(0), hour); v.Limit != "" {
			t.Fatalf("first: %+v", v)
		}
		if v, _ := b.Admit(ctx, k, ratelimit.Limits{RPM: 2, MaxStreams: 1}, lease(1), hour); v.Limit != "max_streams" {
			t.Fatalf("second stream: %+v", v)
		}
		if v, _ := b.Admit(ctx, k, ratelimit.Limits{RPM: 2}, "", hour); v.Limit != "" {
			t.Errorf("the refused stream used up the rpm: %+v", v)
		}
	})

	t.Run("tpm", func(t *testing.T) {
		b, k := open(t, time.Minute), key(t)
		if v, _ := b.Admit(ctx, k, ratelimit.Limits{TPM: 500}, "", hour); v.Limit != "" {
			t.Fatalf("first: %+v", v)
		}
		if err := b.Done(ctx, k, 500, ""); err != nil {
			t.Fatal(err)
		}
		if v, _ := b.Admit(ctx, k, ratelimit.Limits{TPM: 500}, "", hour); v.Limit != "tpm" || v.Wait <= 0 {
			t.Errorf("at 500 of 500: %+v", v)
		}
		if v, _ := b.Admit(ctx, k, ratelimit.Limits{TPM: 501}, "", hour); v.Limit != "" {
			t.Errorf("at 500 of 501: %+v", v)
		}
	})

	t.Run("max_streams", func(t *testing.T) {
		b, k := open(t, time.Minute), key(t)
		lim := ratelimit.Limits{MaxStreams: 2}
		for _, id := range []string{"a-" + k, "b-" + k} {
			if v, _ := b.Admit(ctx, k, lim, id, hour); v.Limit != "" {
				t.Fatalf("%s: %+v", id, v)
			}
		}
		if v, _ := b.Admit(ctx, k, lim, "c-"+k, hour); v.Limit != "max_streams" {
			t.Fatalf("third: %+v", v)
		}
		if err := b.Done(ctx, k, 0, "a-"+k); err != nil {
			t.Fatal(err)
		}
		if v, _ := b.Admit(ctx, k, lim, "c-"+k, hour); v.Limit != "" {
			t.Errorf("the freed slot did not come back: %+v", v)
		}
	})

	t.Run("an unrenewed lease expires, a renewed one holds", func(t *testing.T) {
		b, k := open(t, time.Minute), key(t)
		lim := ratelimit.Limits{MaxStreams: 1}
		if v, _ := b.Admit(ctx, k, lim, "held-"+k, time.Millisecond); v.Limit != "" {
			t.Fatalf("first: %+v", v)
		}
		// Renewed before anyone reclaims it: held for the hour.
		if err := b.Renew(ctx, map[string]string{"held-" + k: k}, hour); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // past the first lease's millisecond
		if v, _ := b.Admit(ctx, k, lim, "next-"+k, hour); v.Limit != "max_streams" {
			t.Fatalf("a renewed lease was reclaimed: %+v", v)
		}
		k2 := key(t)
		if v, _ := b.Admit(ctx, k2, lim, "dead-"+k2, time.Millisecond); v.Limit != "" {
			t.Fatalf("first: %+v", v)
		}
		eventually(t, "a dead holder's slot comes back", func() bool {
			v, err := b.Admit(ctx, k2, lim, "next-"+k2, hour)
			return err == nil && v.Limit == ""
		})
	})

	t.Run("the window slides", func(t *testing.T) {
		window := 600 * time.Millisecond
		b, k := open(t, window), key(t)
		lim := ratelimit.Limits{RPM: 2}
		for range 2 {
			if v, _ := b.Admit(ctx, k, lim, "", hour); v.Limit != "" {
				t.Fatalf("refused early: %+v", v)
			}
		}
		v, _ := b.Admit(ctx, k, lim, "", hour)
		if v.Limit != "rpm" || v.Wait > window+window/60 {
			t.Fatalf("third: %+v; want rpm within %v", v, window)
		}
		eventually(t, "the window frees a request", func() bool {
			v, err := b.Admit(ctx, k, lim, "", hour)
			return err == nil && v.Limit == ""
		})
	})

	t.Run("concurrent admissions are atomic", func(t *testing.T) {
		b, k := open(t, time.Minute), key(t)
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				lease := fmt.Sprintf("c%d-%s", i, k)
				v, err := b.Admit(ctx, k, ratelimit.Limits{RPM: 10, MaxStreams: 25}, lease, hour)
				if err != nil {
					t.Error(err)
				}
				if v.Limit == "" {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		if n := admitted.Load(); n != 10 {
			t.Errorf("admitted %d of 40 under rpm 10", n)
		}
	})

	t.Run("heartbeat counts live replicas", func(t *testing.T) {
		if !shared {
			t.Skip("a process-local backend is one replica by definition")
		}
		b := open(t, time.Minute)
		if _, err := b.Heartbeat(ctx, "short", time.Millisecond); err != nil {
			t.Fatal(err)
		}
		n, err := b.Heartbeat(ctx, "long-a", hour)
		if err != nil || n < 1 || n > 2 {
			t.Fatalf("heartbeat: %d, %v", n, err)
		}
		if n, _ := b.Heartbeat(ctx, "long-b", hour); n < 2 {
			t.Errorf("two live replicas counted as %d", n)
		}
		eventually(t, "a silent replica leaves the count", func() bool {
			n, err := b.Heartbeat(ctx, "long-a", hour)
			return err == nil && n == 2
		})
	})
}
