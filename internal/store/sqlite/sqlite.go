// Package sqlite opens tidegate's embedded store: SQLite through a pure-Go
// driver, WAL journal, a durable fsync on every commit.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/tidegate/tidegate/internal/store"
)

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*store.DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// One connection: SQLite has one writer, and serialising in Go avoids
	// SQLITE_BUSY under load; reads are microseconds.
	db.SetMaxOpenConns(1)
	s, err := store.New(ctx, db, store.SQLite)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
