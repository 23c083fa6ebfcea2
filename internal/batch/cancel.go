package batch

import (
	"context"
	"fmt"
	"time"
)

// CancelStore is what Cancel needs of the store.
type CancelStore interface {
	UpdateBatch(ctx context.Context, id string, from []Status, u Update) (bool, error)
	Batch(ctx context.Context, id string) (*Batch, error)
}

// NotCancellableError is a cancel of a batch that has already ended.
type NotCancellableError struct {
	ID     string
	Status Status
}

func (e *NotCancellableError) Error() string {
	return fmt.Sprintf("batch %s is %s and cannot be cancelled", e.ID, e.Status)
}

// Cancel moves batch id to cancelling if it is still validating or in
// progress; the executor's loop then stops issuing its items (those in
// flight finish, the rest are answered batch_cancelled) and ends it
// cancelled. A batch already cancelling or cancelled is not an error (a
// second click, another replica); one that ended otherwise is a
// *NotCancellableError. It answers the batch as it stands after the move.
// The caller checks that the batch is the caller's to cancel, and wakes
// the executor (Executor.Wake) when it runs in this process.
func Cancel(ctx context.Context, st CancelStore, id string, at time.Time) (*Batch, error) {
	moved, err := st.UpdateBatch(ctx, id, []Status{Validating, InProgress}, Update{Status: Cancelling, At: at})
	if err != nil {
		return nil, err
	}
	b, err := st.Batch(ctx, id)
	if err != nil {
		return nil, err
	}
	if !moved && b.Status != Cancelling && b.Status != Cancelled {
		return b, &NotCancellableError{ID: b.ID, Status: b.Status}
	}
	return b, nil
}

// Cancel cancels batch id (see the package's Cancel) and wakes the loop.
func (e *Executor) Cancel(ctx context.Context, id string) (*Batch, error) {
	b, err := Cancel(ctx, e.Store, id, e.now().UTC())
	if err == nil {
		e.Wake()
	}
	return b, err
}
