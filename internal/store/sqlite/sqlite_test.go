package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.DB {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	v, _, _ := s.SettingOnce(ctx, "k", func() string { return "first" })
	s.Close()
	s, err = Open(ctx, path) // migrations already applied: a no-op
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if w, created, _ := s.SettingOnce(ctx, "k", func() string { return "second" }); w != v || created {
		t.Errorf("after reopen: %q (created %v), want %q", w, created, v)
	}
}

// TestFilesAreOwnerOnly: the database and its WAL are created 0600 whatever
// the umask: they hold key hashes, budgets and the ledger.
func TestFilesAreOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "t.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.SettingOnce(context.Background(), "k", func() string { return "v" }); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), mode)
		}
	}
}

func TestMigrations(t *testing.T) {
	storetest.RunMigrations(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "t.db")
		return func(ctx context.Context, opts store.Options) (*store.DB, error) { return OpenWith(ctx, path, opts) }
	})
}

// TestHandles: SQLite is one process's store, so its "replicas" share it.
func TestHandles(t *testing.T) {
	storetest.RunHandles(t, func(t *testing.T, n int) []*store.DB {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		dbs := make([]*store.DB, n)
		for i := range dbs {
			dbs[i] = s
		}
		return dbs
	})
}
