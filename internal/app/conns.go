package app

import (
	"cmp"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/store"
)

// riverConns bounds River's own PostgreSQL pool (the batch job queue: its
// LISTEN connection, the producer, the completer, leadership). pgxpool's
// default is the node's CPU count, which on a large node would take a
// replica past any connection budget.
const riverConns = 4

// Connections beside the store's pool that a replica holds on PostgreSQL.
const (
	notifyConns     = 2 // LISTEN/NOTIFY: one listening, one sending (notify.go)
	reconcilerConns = 1 // the reconciler's advisory lock (leader.go)
)

// PostgresConnsPerReplica is the most PostgreSQL connections one replica
// opens with cfg: the store's pool, LISTEN/NOTIFY, the reconciler's lock,
// the limiter's pool (without Redis) and River's (with batches). A
// deployment keeps (replicas + surge) × this under max_connections.
func PostgresConnsPerReplica(cfg *config.Config) int {
	n := cmp.Or(cfg.Database.MaxConns, store.DefaultMaxConns) + notifyConns + reconcilerConns
	if cfg.Limits.URL == "" {
		n += limiterConns
	}
	if !cfg.Batches.Disabled {
		n += riverConns
	}
	return n
}

// openRiverPool opens River's pool on the PostgreSQL store, bounded at
// riverConns.
func openRiverPool(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("batches: %w", err)
	}
	pc.MaxConns = riverConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("batches: %w", err)
	}
	return pool, nil
}
