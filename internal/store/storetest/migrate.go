package storetest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/store"
)

// Opener opens one database (the same one at every call) with options.
type Opener func(ctx context.Context, opts store.Options) (*store.DB, error)

// Fresh makes a new, empty database for one test and returns its opener.
type Fresh func(t *testing.T) Opener

// RunMigrations checks how a store migrates: replicas starting together
// on an empty database apply each migration once between them, without an
// error; a store told to skip migrating refuses a schema that is behind.
func RunMigrations(t *testing.T, fresh Fresh) {
	t.Run("ConcurrentMigrators", func(t *testing.T) { testConcurrentMigrators(t, fresh(t)) })
	t.Run("SkipRefusesEmpty", func(t *testing.T) { testSkipRefusesEmpty(t, fresh(t)) })
}

func testConcurrentMigrators(t *testing.T, open Opener) {
	const replicas = 6
	ctx := context.Background()
	want, err := store.Versions()
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []int
		errs    []error
	)
	start := make(chan struct{})
	for range replicas {
		wg.Go(func() {
			<-start // all at once, as replicas of one rollout
			s, err := open(ctx, store.Options{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			applied = append(applied, s.Migrated()...)
			s.Close()
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d migrators failed; first: %v", len(errs), replicas, errs[0])
	}
	// Each version applied by exactly one of them: sorted, no repeats.
	slices.Sort(applied)
	if diff := cmp.Diff(want, applied); diff != "" {
		t.Errorf("versions applied across %d migrators (-each once +got):\n%s", replicas, diff)
	}
	// The schema is current: a store that skips migrating opens, applying nothing.
	s, err := open(ctx, store.Options{SkipMigrate: true})
	if err != nil {
		t.Fatalf("open without migrating after the migrators: %v", err)
	}
	defer s.Close()
	if got := s.Migrated(); len(got) != 0 {
		t.Errorf("a store opened with SkipMigrate applied %v", got)
	}
	again, err := open(ctx, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got := again.Migrated(); len(got) != 0 {
		t.Errorf("migrating a current schema applied %v, want nothing", got)
	}
}

func testSkipRefusesEmpty(t *testing.T, open Opener) {
	s, err := open(context.Background(), store.Options{SkipMigrate: true})
	if err == nil {
		s.Close()
		t.Fatal("a store that skips migrating opened on an empty database")
	}
	if !strings.Contains(err.Error(), "tidegate migrate") {
		t.Errorf("error %q does not name `tidegate migrate`", err)
	}
}
