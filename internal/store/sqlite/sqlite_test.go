package sqlite

import (
	"context"
	"path/filepath"
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
