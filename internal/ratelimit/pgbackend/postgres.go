// Package pgbackend counts rate limits in PostgreSQL, for several replicas
// without Redis.
package pgbackend

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/tidegate/tidegate/internal/ratelimit"
)

// Postgres is a ratelimit.Backend in PostgreSQL: one function call (one round trip) per
// admission, serialised per key by a transaction-scoped advisory lock.
// Times are the database's, so replicas' clocks need not agree.
type Postgres struct {
	db     *sql.DB
	window time.Duration
}

// pgSchema is the limiter's own: it is created (idempotently, once at a
// time) when a replica opens the limiter, so the store's migrations —
// shared with SQLite, which never counts across replicas — stay as they are.
// Its tables are UNLOGGED: counts need no durability (a database crash
// empties them, forgiving at most a window's requests), and without WAL an
// admission commits without waiting on a disk flush (5 ms → well under 1 ms
// here, see docs/benchmarks.md).
const pgSchema = `
CREATE UNLOGGED TABLE IF NOT EXISTS rate_counts (
    key_id   TEXT NOT NULL,
    bucket   BIGINT NOT NULL,           -- unix ms ÷ bucket width
    requests BIGINT NOT NULL DEFAULT 0,
    tokens   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, bucket)
);
CREATE UNLOGGED TABLE IF NOT EXISTS rate_leases (
    id         TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_leases_key ON rate_leases (key_id);
CREATE UNLOGGED TABLE IF NOT EXISTS limit_replicas (
    id         TEXT PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
CREATE OR REPLACE FUNCTION tidegate_rate_admit(p_key TEXT, p_width BIGINT, p_rpm BIGINT, p_tpm BIGINT,
    p_max BIGINT, p_lease TEXT, p_ttl BIGINT, OUT lim TEXT, OUT wait_ms BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    now_ms BIGINT := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
    cur    BIGINT := now_ms / p_width;
    n      BIGINT;
    oldest BIGINT;
BEGIN
    lim := ''; wait_ms := 0;
    PERFORM pg_advisory_xact_lock(hashtextextended(p_key, 7204852));
    DELETE FROM rate_counts WHERE key_id = p_key AND bucket <= cur - 60;
    IF p_rpm > 0 THEN
        SELECT coalesce(sum(requests), 0), coalesce(min(bucket) FILTER (WHERE requests > 0), cur)
            INTO n, oldest FROM rate_counts WHERE key_id = p_key;
        IF n >= p_rpm THEN lim := 'rpm'; wait_ms := (oldest + 60) * p_width - now_ms; RETURN; END IF;
    END IF;
    IF p_tpm > 0 THEN
        SELECT coalesce(sum(tokens), 0), coalesce(min(bucket) FILTER (WHERE tokens > 0), cur)
            INTO n, oldest FROM rate_counts WHERE key_id = p_key;
        IF n >= p_tpm THEN lim := 'tpm'; wait_ms := (oldest + 60) * p_width - now_ms; RETURN; END IF;
    END IF;
    IF p_lease <> '' THEN
        DELETE FROM rate_leases WHERE key_id = p_key AND expires_ms <= now_ms;
        IF (SELECT count(*) FROM rate_leases WHERE key_id = p_key) >= p_max THEN
            lim := 'max_streams'; wait_ms := 1000; RETURN;
        END IF;
        INSERT INTO rate_leases (id, key_id, expires_ms) VALUES (p_lease, p_key, now_ms + p_ttl);
    END IF;
    INSERT INTO rate_counts (key_id, bucket, requests) VALUES (p_key, cur, 1)
        ON CONFLICT (key_id, bucket) DO UPDATE SET requests = rate_counts.requests + 1;
END $$`

// pgNow is the database clock in unix ms.
const pgNow = `(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT`

// Open opens a small pool of its own on dsn (the store's) and
// makes sure the limiter's tables and function exist.
func Open(ctx context.Context, dsn string, window time.Duration, conns int) (*Postgres, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if window <= 0 {
		window = time.Minute
	}
	p := &Postgres{db: db, window: window}
	if err := p.ensureSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return p, nil
}

func (p *Postgres) ensureSchema(ctx context.Context) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	defer tx.Rollback()
	// Replicas starting together: CREATE OR REPLACE FUNCTION run twice at
	// once fails ("tuple concurrently updated").
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7204853)`); err != nil {
		return fmt.Errorf("limits: schema lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, pgSchema); err != nil {
		return fmt.Errorf("limits: schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("limits: schema: %w", err)
	}
	return nil
}

// Close closes the pool.
func (p *Postgres) Close() error { return p.db.Close() }

func (p *Postgres) width() int64 { return ratelimit.BucketWidth(p.window).Milliseconds() }

func (p *Postgres) Admit(ctx context.Context, key string, l ratelimit.Limits, lease string, ttl time.Duration) (ratelimit.Verdict, error) {
	var v ratelimit.Verdict
	var ms int64
	err := p.db.QueryRowContext(ctx, `SELECT lim, wait_ms FROM tidegate_rate_admit($1, $2, $3, $4, $5, $6, $7)`,
		key, p.width(), l.RPM, l.TPM, l.MaxStreams, lease, ttl.Milliseconds()).Scan(&v.Limit, &ms)
	if err != nil {
		return ratelimit.Verdict{}, fmt.Errorf("limits: postgres: %w", err)
	}
	v.Wait = time.Duration(max(ms, 0)) * time.Millisecond
	return v, nil
}

func (p *Postgres) Done(ctx context.Context, key string, tokens int64, lease string) error {
	_, err := p.db.ExecContext(ctx, `WITH freed AS (DELETE FROM rate_leases WHERE id = $3::TEXT)
		INSERT INTO rate_counts (key_id, bucket, tokens) SELECT $1, `+pgNow+` / $4::BIGINT, $2::BIGINT WHERE $2::BIGINT > 0
		ON CONFLICT (key_id, bucket) DO UPDATE SET tokens = rate_counts.tokens + EXCLUDED.tokens`,
		key, tokens, lease, p.width())
	if err != nil {
		return fmt.Errorf("limits: postgres: %w", err)
	}
	return nil
}

func (p *Postgres) Renew(ctx context.Context, leases map[string]string, ttl time.Duration) error {
	ids := make([]string, 0, len(leases))
	for id := range leases {
		ids = append(ids, id)
	}
	_, err := p.db.ExecContext(ctx, `UPDATE rate_leases SET expires_ms = `+pgNow+` + $2 WHERE id = ANY($1)`,
		ids, ttl.Milliseconds())
	if err != nil {
		return fmt.Errorf("limits: postgres: renew: %w", err)
	}
	return nil
}

func (p *Postgres) Heartbeat(ctx context.Context, replica string, ttl time.Duration) (int, error) {
	if _, err := p.db.ExecContext(ctx, `INSERT INTO limit_replicas (id, expires_ms) VALUES ($1, `+pgNow+` + $2)
		ON CONFLICT (id) DO UPDATE SET expires_ms = EXCLUDED.expires_ms`, replica, ttl.Milliseconds()); err != nil {
		return 0, fmt.Errorf("limits: postgres: heartbeat: %w", err)
	}
	var n int
	if err := p.db.QueryRowContext(ctx, `WITH gone AS (DELETE FROM limit_replicas WHERE expires_ms <= `+pgNow+`)
		SELECT count(*) FROM limit_replicas WHERE expires_ms > `+pgNow).Scan(&n); err != nil {
		return 0, fmt.Errorf("limits: postgres: heartbeat: %w", err)
	}
	return n, nil
}
