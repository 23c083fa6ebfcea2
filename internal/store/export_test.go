package store

import (
	"context"
	"database/sql"
)

// WriteForTest queues an operation on the writer, as the store's own writes do.
func (s *DB) WriteForTest(ctx context.Context, refusable bool, apply func(ctx context.Context, tx *sql.Tx) error) error {
	if refusable {
		return s.writeRefusable(ctx, true, nil, apply)
	}
	return s.write(ctx, true, apply)
}

// QueuedForTest is how many operations wait for the writer.
func (s *DB) QueuedForTest() int { return len(s.w.ops) }

// SQLForTest is the store's read pool.
func (s *DB) SQLForTest() *sql.DB { return s.rdb }
