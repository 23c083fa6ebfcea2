// Package postgres opens tidegate's store on PostgreSQL, for several replicas.
package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/tidegate/tidegate/internal/store"
)

// Open connects to dsn (postgres://…) and migrates the database.
func Open(ctx context.Context, dsn string) (*store.DB, error) {
	return OpenWith(ctx, dsn, store.Options{})
}

// connMaxIdle is how long an unused connection stays open: a replica past
// its peak hands connections back to the server, whose limit all replicas
// share.
const connMaxIdle = 2 * time.Minute

// OpenWith is Open with options: the pool's size, and whether to migrate.
func OpenWith(ctx context.Context, dsn string, opts store.Options) (*store.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	n := cmp.Or(opts.MaxConns, store.DefaultMaxConns)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(connMaxIdle)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	s, err := store.NewWith(ctx, db, nil, store.Postgres, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
