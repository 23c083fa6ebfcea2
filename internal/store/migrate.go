package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// DefaultMaxConns is a PostgreSQL store's pool size per process when the
// config sets none. The hot writes go through one writer (writer.go), so
// one connection carries them; the rest serve reads (keys, budgets, the
// admin API), which are short.
const DefaultMaxConns = 10

// migrateLock is the advisory lock key under which PostgreSQL migrations run;
// its second half is the schema's hash, so that stores in other schemas of
// one database (tests, tenants) do not wait for each other.
const migrateLock = 7204851

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string
	body    string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]migration, 0, len(names))
	for _, name := range names {
		base := path.Base(name)
		num, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("store: migration %s has no number", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: num, name: base, body: string(body)})
	}
	return out, nil
}

// Migrated lists the migrations this open applied (none when the schema
// was current or migrating was skipped), for `tidegate migrate`.
func (s *DB) Migrated() []int { return s.migrated }

// migrate applies the numbered migrations not yet applied, each in a
// transaction, and returns the versions it applied. Everything runs on one
// connection: a PostgreSQL advisory lock is held by a session, so the lock,
// the migrations and the unlock must share it, or replicas starting
// together would each think they hold the lock.
func (s *DB) migrate(ctx context.Context) ([]int, error) {
	all, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()
	if s.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, hashtext(current_schema()))`, migrateLock); err != nil {
			return nil, fmt.Errorf("store: migrate lock: %w", err)
		}
		// Unlocked even when ctx has ended; a lost connection frees it anyway.
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, migrateLock)
	}
	// Under the lock: concurrent CREATE TABLE IF NOT EXISTS can still
	// collide in PostgreSQL's catalog.
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	var applied []int
	for _, m := range all {
		done, err := s.applyMigration(ctx, conn, m)
		if err != nil {
			return applied, fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if done {
			applied = append(applied, m.version)
		}
	}
	s.migrated = applied
	return applied, nil
}

// UnderMigrateLock runs fn holding the lock the store's own migrations run
// under (PostgreSQL's advisory lock on one session), so that migrations
// kept elsewhere (River's job tables) are applied once however many
// replicas or migrate jobs start together. SQLite has no such lock: one
// process owns its file.
func (s *DB) UnderMigrateLock(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.dialect != Postgres {
		return fn(ctx)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate lock: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, hashtext(current_schema()))`, migrateLock); err != nil {
		return fmt.Errorf("store: migrate lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, migrateLock)
	return fn(ctx)
}

// applyMigration applies m unless it is recorded, deciding inside the
// transaction: SQLite's immediate transactions then serialise two
// processes opening one file, as PostgreSQL's lock does replicas.
func (s *DB) applyMigration(ctx context.Context, conn *sql.Conn, m migration) (applied bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var one int
	err = tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM schema_migrations WHERE version = ?`), m.version).Scan(&one)
	if err == nil {
		return false, tx.Commit()
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	for _, stmt := range strings.Split(stripComments(m.body), ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err = tx.ExecContext(ctx, stmt); err != nil {
			return false, err
		}
	}
	if _, err = tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), m.version, micros(s.now())); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// checkMigrated fails unless every migration is applied: a replica told
// not to migrate must not run on a schema older than its code.
func (s *DB) checkMigrated(ctx context.Context) error {
	all, err := loadMigrations()
	if err != nil {
		return err
	}
	have := map[int]bool{}
	rows, err := s.rdb.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("store: the schema is not migrated (%v): run `tidegate migrate` first", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		have[v] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var missing []string
	for _, m := range all {
		if !have[m.version] {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("store: %d migration(s) not applied (%s): run `tidegate migrate` first", len(missing), strings.Join(missing, ", "))
	}
	return nil
}

func stripComments(sqlText string) string {
	var out []string
	for _, line := range strings.Split(sqlText, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// Versions lists every migration's version, in order.
func Versions() ([]int, error) {
	all, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	vs := make([]int, len(all))
	for i, m := range all {
		vs[i] = m.version
	}
	return vs, nil
}
