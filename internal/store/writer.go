package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// The hot writes — reservations and settlements, two per metered request —
// go through one writer that applies every pending operation in a shared
// transaction and commits once: group commit. An operation that may be
// refused (a reservation past its budget) runs inside its own savepoint, so
// it is rolled back alone. The others (settlements, usage, request log) fail
// only when the database does: they run bare, two statements fewer each, and
// if one fails anyway the whole transaction is rolled back and the batch
// replayed with every operation in a savepoint — the outcome is the same as
// if each had been isolated from the start. On PostgreSQL a batch first
// locks the hot rows its operations change, in one order (locks.go); an
// operation that still loses a deadlock is run again alone (retryAlone).
// Nothing waits on a timer: a batch is whatever arrived while the previous
// commit was being made durable, so an idle store commits one operation at
// once and a busy one amortises its fsync over many.

type writeOp struct {
	// apply may run twice (see commit): it must not change what it captured.
	apply func(ctx context.Context, tx *sql.Tx) error
	// durable: the commit must reach the disk (ledger, settlements). A batch
	// of reservations only needs atomicity and visibility: a hold lost to a
	// power failure dies with its request.
	durable bool
	// refusable: the operation fails by design (a budget refusal), so it
	// gets a savepoint of its own even on the first try.
	refusable bool
	// locks are the hot rows apply changes, taken before any operation of
	// the batch runs (see locks.go).
	locks []rowLock
	done  chan error
}

type writer struct {
	ops    chan writeOp
	stop   chan struct{}
	closed sync.WaitGroup
	// syncMode is SQLite's synchronous setting on the writer connection,
	// changed only when a batch needs the other one. A replaced connection
	// starts at the DSN's FULL, so a stale value can only err towards durable.
	syncMode string
}

// maxBatch bounds one transaction, so one commit never holds the write lock long.
const maxBatch = 512

func (s *DB) startWriter() {
	s.w = &writer{ops: make(chan writeOp, 4096), stop: make(chan struct{}), syncMode: "FULL"}
	s.w.closed.Add(1)
	go s.writeLoop()
}

func (s *DB) stopWriter() {
	if s.w == nil {
		return
	}
	close(s.w.stop)
	s.w.closed.Wait()
}

// write queues an operation that fails only when the database does, and
// waits until its batch commits.
func (s *DB) write(ctx context.Context, durable bool, apply func(ctx context.Context, tx *sql.Tx) error) error {
	return s.enqueue(writeOp{apply: apply, durable: durable, done: make(chan error, 1)})
}

// writeLocked is write for an operation that changes the hot rows locks.
func (s *DB) writeLocked(ctx context.Context, durable bool, locks []rowLock, apply func(ctx context.Context, tx *sql.Tx) error) error {
	return s.enqueue(writeOp{apply: apply, durable: durable, locks: locks, done: make(chan error, 1)})
}

// writeRefusable queues an operation that may fail by design (see writeOp)
// and changes the hot rows locks.
func (s *DB) writeRefusable(ctx context.Context, durable bool, locks []rowLock, apply func(ctx context.Context, tx *sql.Tx) error) error {
	return s.enqueue(writeOp{apply: apply, durable: durable, refusable: true, locks: locks, done: make(chan error, 1)})
}

func (s *DB) enqueue(op writeOp) error {
	select {
	case s.w.ops <- op:
	case <-s.w.stop:
		return errors.New("store: closed")
	}
	// The operation is queued: its outcome is waited for even if the caller's
	// context ends, so a settlement is never half-known.
	return <-op.done
}

func (s *DB) writeLoop() {
	defer s.w.closed.Done()
	batch := make([]writeOp, 0, maxBatch)
	for {
		select {
		case op := <-s.w.ops:
			batch = append(batch[:0], op)
		case <-s.w.stop:
			// Finish what was queued before stopping.
			for {
				select {
				case op := <-s.w.ops:
					s.commit([]writeOp{op})
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case op := <-s.w.ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// commit applies a batch in one transaction (see the comment at the top).
func (s *DB) commit(batch []writeOp) {
	ctx := context.Background()
	durable := false
	for _, op := range batch {
		durable = durable || op.durable
	}
	if s.dialect == SQLite {
		// The writer pool has one connection, so this applies to the
		// transaction below. WAL with NORMAL survives a process crash.
		mode := "NORMAL"
		if durable {
			mode = "FULL"
		}
		if mode != s.w.syncMode {
			if _, err := s.db.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
				for _, op := range batch {
					op.done <- err
				}
				return
			}
			s.w.syncMode = mode
		}
	}
	results, err := s.commitOnce(ctx, batch, durable, false)
	if err != nil && len(batch) > 1 {
		// An operation without a savepoint failed: the transaction was rolled
		// back whole; replay the batch with each one isolated.
		results, err = s.commitOnce(ctx, batch, durable, true)
	}
	for i, op := range batch {
		opErr := err
		if opErr == nil {
			opErr = results[i]
		}
		if retryable(opErr) {
			// A deadlock victim: its savepoint (or the whole batch) was
			// rolled back, so it left nothing behind; the batch's locks are
			// released now.
			opErr = s.retryAlone(ctx, op)
		}
		op.done <- opErr
	}
}

// commitOnce runs the batch in one transaction. Without isolate, only
// refusable operations get a savepoint, and a failure of any other rolls the
// transaction back and is returned as err (results is then nil). With
// isolate, every operation gets one and its own failure is in results.
func (s *DB) commitOnce(ctx context.Context, batch []writeOp, durable, isolate bool) (results []error, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if s.dialect == Postgres && !durable {
		if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return nil, errors.Join(err, tx.Rollback())
		}
	}
	var locks []rowLock
	for _, op := range batch {
		locks = append(locks, op.locks...)
	}
	if err := s.takeLocks(ctx, tx, locks); err != nil {
		// Nothing was applied; a deadlock here sends each operation to run
		// alone (see commit).
		return nil, errors.Join(err, tx.Rollback())
	}
	if len(batch) == 1 {
		// Alone in its transaction, an operation needs no savepoint: a
		// failure rolls the whole transaction back.
		err := batch[0].apply(ctx, tx)
		if err == nil {
			err = tx.Commit()
		} else {
			err = errors.Join(err, tx.Rollback())
		}
		return []error{err}, nil
	}
	results = make([]error, len(batch))
	for i, op := range batch {
		if !isolate && !op.refusable {
			if err := op.apply(ctx, tx); err != nil {
				return nil, errors.Join(err, tx.Rollback())
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			results[i] = err
			continue
		}
		if err := op.apply(ctx, tx); err != nil {
			results[i] = err
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT op"); rerr != nil {
				results[i] = errors.Join(err, rerr)
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT op"); err != nil && results[i] == nil {
			results[i] = err
		}
	}
	if err := tx.Commit(); err != nil {
		for i := range results {
			results[i] = errors.Join(results[i], err)
		}
	}
	return results, nil
}

// A batch takes its operations' row locks in the order they arrived, and
// another replica's batch (or the reconciler) may take the same rows in
// another order: PostgreSQL then aborts one of them as a deadlock victim.
// The victim's operation did nothing, so it is run again, alone in its own
// transaction, where it holds few rows and waits for no batch of its own.
const (
	retryAttempts = 8
	retryBackoff  = 2 * time.Millisecond
)

// retryAlone reruns op in transactions of its own until it commits, fails
// for a reason a retry cannot fix, or has tried retryAttempts times.
func (s *DB) retryAlone(ctx context.Context, op writeOp) error {
	return s.retryTx(ctx, func(tx *sql.Tx) error {
		if s.dialect == Postgres && !op.durable {
			if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
				return err
			}
		}
		if err := s.takeLocks(ctx, tx, op.locks); err != nil {
			return err
		}
		return op.apply(ctx, tx)
	})
}

// retryTx is tx, run again while it fails as a deadlock victim; fn must
// have no effect outside the transaction.
func (s *DB) retryTx(ctx context.Context, fn func(*sql.Tx) error) error {
	var err error
	for attempt := range retryAttempts {
		if attempt > 0 {
			// Jittered, growing: two victims of one cycle should not meet again.
			d := retryBackoff << attempt
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(d/2 + rand.N(d)):
			}
		}
		if err = s.tx(ctx, fn); !retryable(err) {
			return err
		}
	}
	return fmt.Errorf("store: still conflicting after %d attempts: %w", retryAttempts, err)
}

// retryable reports whether err is a conflict between concurrent
// transactions that running the same work again resolves: PostgreSQL's
// deadlock_detected (40P01) or serialization_failure (40001). Drivers
// expose the code through SQLState (pgconn.PgError does).
func retryable(err error) bool {
	var coded interface{ SQLState() string }
	if !errors.As(err, &coded) {
		return false
	}
	switch coded.SQLState() {
	case "40P01", "40001":
		return true
	}
	return false
}
