package keys

import (
	"context"
	"errors"
	"time"

	"github.com/tidegate/tidegate/internal/ledger"
)

// ErrNotFound is returned when no key has the given hash or id.
var ErrNotFound = errors.New("keys: no such key")

// Project groups keys; budgets can apply to a whole project.
type Project struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Key is a virtual key as stored: its hash, never the key itself.
type Key struct {
	ID          string
	Hash        string
	Prefix      string
	Name        string
	ProjectID   string
	ProjectName string
	Models      []string
	RPM         int64
	TPM         int64
	MaxStreams  int64
	ExpiresAt   time.Time
	CreatedAt   time.Time
	RevokedAt   time.Time
	Budget      *ledger.Budget // the key's own budget, if any
}

// Finder looks a key up by the hash of its secret, revoked or not;
// ErrNotFound when there is none.
type Finder interface {
	KeyByHash(ctx context.Context, hash string) (*Key, error)
}

// EpochFinder is a Finder that also counts changes to keys.
type EpochFinder interface {
	Finder
	KeyEpoch(ctx context.Context) (int64, error)
}

// Creator stores new keys (Create).
type Creator interface {
	// EnsureProject returns the project of that name, creating it if needed.
	EnsureProject(ctx context.Context, name string) (Project, error)
	// CreateKey stores a key and its budget together.
	CreateKey(ctx context.Context, k *Key) error
}
