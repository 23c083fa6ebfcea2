package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// reconcilerLock is the advisory lock whose holder releases orphaned budget
// holds: one replica at a time does it.
const reconcilerLock = 7204854

// leaderOnly runs fn while this replica holds PostgreSQL's session
// advisory lock key, on a connection of its own; the others try again
// every retry. A holder that dies, SIGKILL included, loses its connection
// and so the lock; one whose connection fails stops fn and competes again.
func leaderOnly(ctx context.Context, dsn string, key int64, retry time.Duration, logger *slog.Logger, fn func(context.Context)) {
	for ctx.Err() == nil {
		if err := leadOnce(ctx, dsn, key, retry, fn); err != nil && ctx.Err() == nil {
			logger.Warn("leader lock lost or not reachable; retrying", "lock", key, "error", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// leadOnce takes the lock if it is free and runs fn until ctx ends or the
// connection fails.
func leadOnce(ctx context.Context, dsn string, key int64, check time.Duration, fn func(context.Context)) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.Connect(cctx, dsn)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx)) // ends the session: the lock goes with it
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil || !got {
		return err
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fn(fctx) }()
	defer func() { stop(); <-done }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(check):
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			return err
		}
	}
}
