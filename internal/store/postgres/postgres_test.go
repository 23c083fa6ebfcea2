package postgres

import (
	"context"
	"testing"

	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
	"github.com/tidegate/tidegate/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.DB {
		s, err := Open(context.Background(), pgtest.Fresh(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrations(t *testing.T) {
	storetest.RunMigrations(t, func(t *testing.T) storetest.Opener {
		dsn := pgtest.Fresh(t)
		return func(ctx context.Context, opts store.Options) (*store.DB, error) { return OpenWith(ctx, dsn, opts) }
	})
}

func TestHandles(t *testing.T) {
	storetest.RunHandles(t, func(t *testing.T, n int) []*store.DB {
		dsn := pgtest.Fresh(t)
		var dbs []*store.DB
		for range n {
			s, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			dbs = append(dbs, s)
		}
		return dbs
	})
}
