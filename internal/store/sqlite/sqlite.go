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
	return OpenWith(ctx, path, store.Options{})
}

// OpenWith is Open with options (MaxConns does not apply: SQLite has one writer).
func OpenWith(ctx context.Context, path string, opts store.Options) (*store.DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// Create the file owner-only before SQLite does (it would use the
	// umask, often 0644): it holds key hashes, budgets and the ledger, and
	// SQLite gives its WAL and shared-memory files the database's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !os.IsExist(err) {
		return nil, fmt.Errorf("store: %w", err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// One writer connection: SQLite has one writer, and serialising in Go
	// avoids SQLITE_BUSY under load. Readers get their own pool: in WAL
	// mode they never wait for the writer's fsync.
	db.SetMaxOpenConns(1)
	rdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=cache_size(-512)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	rdb.SetMaxOpenConns(4)
	rdb.SetMaxIdleConns(4)
	s, err := store.NewWith(ctx, db, rdb, store.SQLite, opts)
	if err != nil {
		db.Close()
		rdb.Close()
		return nil, err
	}
	return s, nil
}
