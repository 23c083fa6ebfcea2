package tide

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/load"
	"github.com/tidegate/tidegate/internal/router"
)

// The gate's inputs are data (a route's targets, each target's load, the
// catalog's off-peak hours); these stand in for the router, the tracker
// and the catalog, which the tide drill's acceptance runs for real.
type routes map[string][]router.Target

func (r routes) Targets(m string) ([]router.Target, error) {
	if ts, ok := r[m]; ok {
		return ts, nil
	}
	return nil, errors.New("no such model")
}

type loads struct {
	mu sync.Mutex
	m  map[string]load.Load
}

func (l *loads) Tracks(p string) bool { l.mu.Lock(); defer l.mu.Unlock(); _, ok := l.m[p]; return ok }
func (l *loads) Snapshot(t router.Target) load.Load {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[t.Provider]
}
func (l *loads) set(p string, x load.Load) { l.mu.Lock(); defer l.mu.Unlock(); l.m[p] = x }

type offPeakAt func(t router.Target, at time.Time) bool

func (f offPeakAt) OffPeak(t router.Target, at time.Time) bool { return f(t, at) }

var (
	gpu   = router.Target{Provider: "gpu", Model: "q"}
	gpu2  = router.Target{Provider: "gpu2", Model: "q"}
	cloud = router.Target{Provider: "cloud", Model: "q"}
)

// TestRoom: how many items a self-hosted target of 20 sequences takes,
// by its online load (level 0.9: 18 sequences, less 1.25 × the online
// peak, less a reserve of 2).
func TestRoom(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    load.Load
		held int
		want int
	}{
		{"idle", load.Load{Capacity: 20, Fresh: true}, 0, 16},
		{"online 4", load.Load{Capacity: 20, InFlight: 4, Fresh: true}, 0, 11},
		{"online 4, batch 6 out", load.Load{Capacity: 20, InFlight: 10, BatchInFlight: 6, Fresh: true}, 6, 5},
		{"others' work counts as online", load.Load{Capacity: 20, Others: 4, Fresh: true}, 0, 11},
		{"online near capacity", load.Load{Capacity: 20, InFlight: 14, Fresh: true}, 0, 0},
		{"capacity unknown (8 assumed, no reserve), quiet", load.Load{}, 0, 7},
		{"capacity unknown, online 4", load.Load{InFlight: 4}, 0, 2},
		{"capacity unknown, online 6", load.Load{InFlight: 6}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &targetState{level: startLevel, held: tc.held}
			if got := st.room(tc.l, time.Second, time.Unix(1000, 0)); got != tc.want {
				t.Errorf("room = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestRoomRemembersThePeak: an online burst that just ended still holds
// its room for the next item's time (2 s at least): online may come back
// before a batch item sent now would end. Quiet seconds raise the level
// by 0.05 each meanwhile.
func TestRoomRemembersThePeak(t *testing.T) {
	st := &targetState{level: startLevel}
	at := time.Unix(1000, 0)
	st.room(load.Load{Capacity: 20, InFlight: 8, Fresh: true}, time.Second, at)
	if got := st.room(load.Load{Capacity: 20, Fresh: true}, time.Second, at.Add(time.Second)); got != 7 {
		t.Errorf("a second after a peak of 8: room %d, want 7 (0.95 × 20 − 10 − 2)", got)
	}
	if got := st.room(load.Load{Capacity: 20, Fresh: true}, time.Second, at.Add(3*time.Second)); got != 18 {
		t.Errorf("three seconds after it: room %d, want 18 (1 × 20 − 0 − 2)", got)
	}
}

// TestLevelLearns: the fill level is cut when online work queues or its
// first tokens slow, at most once a second, and rises when quiet.
func TestLevelLearns(t *testing.T) {
	st := &targetState{level: startLevel}
	at := time.Unix(1000, 0)
	queued := load.Load{Capacity: 20, Waiting: 2, Fresh: true}
	st.learn(queued, 3, time.Second, at)
	st.learn(queued, 3, time.Second, at.Add(500*time.Millisecond))
	if want := startLevel * cutFactor; st.level != want {
		t.Errorf("after a queue: level %v, want %v (one cut within a second)", st.level, want)
	}
	slow := load.Load{Capacity: 20, Fresh: true, BaseTTFT: 200 * time.Millisecond, OnlineTTFT: 400 * time.Millisecond, OnlineSeen: 5}
	st.learn(slow, 3, time.Second, at.Add(1500*time.Millisecond))
	if want := startLevel * cutFactor * cutFactor; math.Abs(st.level-want) > 1e-9 {
		t.Errorf("after slow first tokens: level %v, want %v", st.level, want)
	}
	quiet := load.Load{Capacity: 20, Fresh: true, BaseTTFT: 200 * time.Millisecond, OnlineTTFT: 220 * time.Millisecond, OnlineSeen: 5}
	before := st.level
	for i := range 5 {
		st.learn(quiet, 3, time.Second, at.Add(time.Duration(3+i)*time.Second))
	}
	if st.level <= before || st.level > 1 {
		t.Errorf("after quiet seconds: level %v, want above %v", st.level, before)
	}
}

// TestHostedOpen: when a hosted target takes batch items.
func TestHostedOpen(t *testing.T) {
	created := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	ask := batch.Ask{Route: "r", Created: created, Expires: created.Add(24 * time.Hour)}
	nightly := offPeakAt(func(_ router.Target, at time.Time) bool { return at.Hour() >= 16 && at.Hour() < 20 })
	never := offPeakAt(func(router.Target, time.Time) bool { return false })
	for _, tc := range []struct {
		name       string
		prices     Prices
		selfHosted bool
		at         time.Time
		want       bool
	}{
		{"off-peak now", nightly, true, created.Add(17 * time.Hour), true},
		{"off-peak later: wait", nightly, false, created.Add(time.Hour), false},
		{"no off-peak window, only hosted targets", never, false, created.Add(time.Hour), true},
		{"no catalog, only hosted targets", nil, false, created.Add(time.Hour), true},
		{"no off-peak window, self-hosted targets take it", never, true, created.Add(time.Hour), false},
		{"the window's last quarter: any price", never, true, created.Add(19 * time.Hour), true},
		{"off-peak only after the rescue point", offPeakAt(func(_ router.Target, at time.Time) bool { return at.Hour() == 23 }), false, created.Add(time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(Config{Routes: routes{}, Prices: tc.prices})
			if got := g.hostedOpen(cloud, ask, tc.selfHosted, tc.at); got != tc.want {
				t.Errorf("hostedOpen = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAcquireSteersAndStepsAside: items go to the target with the most
// room; when online load rises the gate admits no more, and an item that
// waited past MaxWait goes back to the queue (ErrNoRoom).
func TestAcquireSteersAndStepsAside(t *testing.T) {
	ls := &loads{m: map[string]load.Load{
		"gpu":  {Capacity: 20, InFlight: 8, Fresh: true},
		"gpu2": {Capacity: 20, Fresh: true},
	}}
	var mu sync.Mutex
	clock := time.Unix(1000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	g := New(Config{Routes: routes{"r": {gpu, gpu2, cloud}}, Loads: ls, MaxWait: 200 * time.Millisecond, Poll: 10 * time.Millisecond, Now: now})
	ctx := context.Background()
	var releases []func()
	for range 16 {
		_, release, err := g.Acquire(ctx, batch.Ask{Route: "r"})
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	held := map[router.Target]int{}
	for _, r := range g.Reports() {
		held[r.Target] = r.Held
	}
	// gpu2 (room 16) is filled first; gpu (room 6) only once gpu2 has less.
	if d := cmp.Diff(map[router.Target]int{gpu: 3, gpu2: 13}, held); d != "" {
		t.Errorf("held (-want +got):\n%s", d)
	}
	// Online rises on both: no room, the item goes back to the queue.
	ls.set("gpu", load.Load{Capacity: 20, InFlight: 3 + 12, BatchInFlight: 3, Fresh: true})
	ls.set("gpu2", load.Load{Capacity: 20, InFlight: 13 + 4, BatchInFlight: 13, Fresh: true})
	if _, _, err := g.Acquire(ctx, batch.Ask{Route: "r"}); !errors.Is(err, batch.ErrNoRoom) {
		t.Fatalf("Acquire with online risen = %v, want ErrNoRoom", err)
	}
	// The cloud target took nothing: the route's own cards take the batch.
	for _, r := range g.Reports() {
		if r.Target == cloud && r.Admitted > 0 {
			t.Errorf("the hosted target was given %d items", r.Admitted)
		}
	}
	// Online falls back, past the remembered peak, and an item ends: a
	// waiting item is admitted.
	ls.set("gpu2", load.Load{Capacity: 20, InFlight: 12, BatchInFlight: 12, Fresh: true})
	mu.Lock()
	clock = clock.Add(3 * time.Second)
	mu.Unlock()
	done := make(chan error, 1)
	go func() { _, _, err := g.Acquire(ctx, batch.Ask{Route: "r"}); done <- err }()
	releases[0]()
	if err := <-done; err != nil {
		t.Errorf("Acquire after online fell: %v", err)
	}
	// A model the router does not know goes through unsteered: the
	// gateway answers it (model_not_found) into the error file.
	if _, release, err := g.Acquire(ctx, batch.Ask{Route: "nope"}); err != nil || release == nil {
		t.Errorf("unknown route: %v", err)
	}
}

// anyName routes every model name to one target of that name on provider.
type anyName string

func (p anyName) Targets(m string) ([]router.Target, error) {
	return []router.Target{{Provider: string(p), Model: m}}, nil
}

// TestUntrackedNamesAreBounded: batch items to names clients made up, on a
// self-hosted server the tracker does not track them on or on a hosted
// provider, are admitted, but the gate keeps state for a bounded number of
// such targets: beyond it, a target's state lives while it holds items.
func TestUntrackedNamesAreBounded(t *testing.T) {
	for _, provider := range []string{"gpu", "cloud"} {
		t.Run(provider, func(t *testing.T) {
			ls := &loads{m: map[string]load.Load{"gpu": {KVCache: -1}}} // untracked: all zero
			g := New(Config{Routes: anyName(provider), Loads: ls, MaxWait: 5 * time.Second,
				Prices: offPeakAt(func(router.Target, time.Time) bool { return true })})
			for i := range 2000 {
				_, release, err := g.Acquire(context.Background(), batch.Ask{Route: fmt.Sprintf("made-up-%d", i)})
				if err != nil {
					t.Fatal(err)
				}
				if i == 1999 {
					if r := g.Reports(); !slices.ContainsFunc(r, func(r Report) bool { return r.Held == 1 }) {
						t.Error("an item held on an untracked target is not reported")
					}
				}
				release()
			}
			if n := len(g.Reports()); n > maxUntracked {
				t.Errorf("%d targets kept, want at most %d", n, maxUntracked)
			}
		})
	}
}

// TestRoomUnderHostileReadings: a real tracker reads a server that runs 4
// of 20 sequences (KV share 0.2) with no queue, then one reading no server
// could serve; the gate's room on the snapshot taken then stays within
// the capacity, and afterwards equals the room of the good readings alone.
func TestRoomUnderHostileReadings(t *testing.T) {
	good := load.Signals{Running: 4, HasQueue: true, KVCache: 0.2, HasKV: true}
	for _, bad := range []float64{math.NaN(), math.Inf(1), -1, 1e30} {
		for _, field := range []string{"running", "waiting", "kv"} {
			t.Run(fmt.Sprint(field, "=", bad), func(t *testing.T) {
				sig := good
				tr := load.New(load.Config{Servers: []load.Server{{Name: "gpu", Kind: load.VLLM, Models: []string{"q"},
					Read: func(context.Context) (map[string]load.Signals, error) { return map[string]load.Signals{"q": sig}, nil }}}})
				tr.Scrape(context.Background())
				want := (&targetState{level: startLevel}).room(tr.Snapshot(gpu), time.Second, time.Unix(1000, 0))
				switch field {
				case "running":
					sig.Running = bad
				case "waiting":
					sig.Waiting = bad
				case "kv":
					sig.KVCache = bad
				}
				tr.Scrape(context.Background())
				st := &targetState{level: startLevel}
				if room := st.room(tr.Snapshot(gpu), time.Second, time.Unix(1000, 0)); room < 0 || room > 20 {
					t.Errorf("room %d on the hostile reading, want 0–20", room)
				}
				sig = good
				tr.Scrape(context.Background())
				if room := (&targetState{level: startLevel}).room(tr.Snapshot(gpu), time.Second, time.Unix(1000, 0)); room != want || want == 0 {
					t.Errorf("room %d after, want %d (> 0)", room, want)
				}
			})
		}
	}
}
