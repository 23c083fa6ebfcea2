// Package postgres opens tidegate's store on PostgreSQL, for several replicas.
package postgres

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/tidegate/tidegate/internal/store"
)

// Open connects to dsn (postgres://…) and migrates the database.
func Open(ctx context.Context, dsn string) (*store.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	s, err := store.New(ctx, db, nil, store.Postgres)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
