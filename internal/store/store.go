// Package store keeps tidegate's state: projects, virtual keys, budgets and
// their reservations, the usage ledger, the request log, encrypted provider
// credentials. One SQL implementation over database/sql serves SQLite
// (embedded) and PostgreSQL (several replicas); the sqlite and postgres
// packages open them. The records are the domain packages' (keys, ledger,
// reqlog, secrets), and each of those declares the small interface it needs;
// DB implements them all (see boundary.go).
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is what differs between the databases.
type Dialect int

const (
	SQLite Dialect = iota
	Postgres
)

// DB is an open store.
type DB struct {
	db      *sql.DB // writes (for SQLite, its one writer connection)
	rdb     *sql.DB // reads; the same pool as db on PostgreSQL
	dialect Dialect
	now     func() time.Time
	w       *writer
	// migrated lists the migrations this open applied.
	migrated []int
	stmts    sync.Map // *sql.DB + query → *sql.Stmt: hot statements are parsed once
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// prepared returns a cached prepared statement of query on db.
func (s *DB) prepared(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	k := stmtKey{db, query}
	if st, ok := s.stmts.Load(k); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(k, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// txExec runs a statement inside a write transaction, prepared when it is
// one of the hot writes. It never prepares on the write pool here: for
// SQLite that pool's one connection is the transaction's.
func (s *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st, ok := s.stmts.Load(stmtKey{s.db, query}); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, s.q(query), args...)
}

// prepareWrites prepares the hot write statements, before the writer runs.
func (s *DB) prepareWrites(ctx context.Context) error {
	for _, q := range hotWrites {
		if _, err := s.prepared(ctx, s.db, q); err != nil {
			return fmt.Errorf("store: prepare: %w", err)
		}
	}
	return nil
}

// queryRow runs a cached read statement.
func (s *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, s.rdb, query)
	if err != nil {
		return s.rdb.QueryRowContext(ctx, s.q(query), args...) // reports the same error on Scan
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a cached read statement returning rows.
func (s *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, s.rdb, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// New wraps open database pools (reads may share the write pool) and applies the migrations.
func New(ctx context.Context, db, rdb *sql.DB, d Dialect) (*DB, error) {
	return NewWith(ctx, db, rdb, d, Options{})
}

// Options tune how a store opens.
type Options struct {
	// SkipMigrate leaves the schema alone (`tidegate migrate` ran, or will):
	// opening fails, naming the command, unless every migration is applied.
	SkipMigrate bool
	// MaxConns bounds a PostgreSQL store's connection pool, per process;
	// 0: DefaultMaxConns. SQLite ignores it (one writer, a few readers).
	MaxConns int
}

// NewWith is New with options.
func NewWith(ctx context.Context, db, rdb *sql.DB, d Dialect, opts Options) (*DB, error) {
	if rdb == nil {
		rdb = db
	}
	s := &DB{db: db, rdb: rdb, dialect: d, now: time.Now}
	if opts.SkipMigrate {
		if err := s.checkMigrated(ctx); err != nil {
			return nil, err
		}
	} else if _, err := s.migrate(ctx); err != nil {
		return nil, err
	}
	if err := s.prepareWrites(ctx); err != nil {
		return nil, err
	}
	s.startWriter()
	return s, nil
}

// Close finishes queued writes, then closes the pools.
func (s *DB) Close() error {
	s.stopWriter()
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	err := s.db.Close()
	if s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

// Ping checks that the database answers, on the read pool: SQLite's one
// writer connection may be busy committing a batch, which is not an outage.
func (s *DB) Ping(ctx context.Context) error { return s.rdb.PingContext(ctx) }

// Dialect reports which database this is.
func (s *DB) Dialect() Dialect { return s.dialect }

// q rewrites ? placeholders for PostgreSQL.
func (s *DB) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// tx runs fn in a transaction, committing when it returns nil.
func (s *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// SettingOnce returns the stored value of key, storing make() first if there
// is none. Concurrent callers all get the one value that was stored.
func (s *DB) SettingOnce(ctx context.Context, key string, make func() string) (value string, created bool, err error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO settings (key, value, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING`),
		key, make(), micros(s.now()))
	if err != nil {
		return "", false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	if err := s.rdb.QueryRowContext(ctx, s.q(`SELECT value FROM settings WHERE key = ?`), key).Scan(&value); err != nil {
		return "", false, fmt.Errorf("store: %w", err)
	}
	return value, n == 1, nil
}

// ReplaceSetting sets key to value if it still holds old; it reports
// whether it did (another process may have replaced it first).
func (s *DB) ReplaceSetting(ctx context.Context, key, old, value string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE settings SET value = ? WHERE key = ? AND value = ?`), value, key, old)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
