package keys

import (
	"fmt"
	"time"

	"github.com/tidegate/tidegate/internal/ledger"
)

// Update changes a key after its creation; nil fields stay as they are.
type Update struct {
	RPM, TPM, MaxStreams *int64
	Models               *[]string // an empty list allows every model
	// ExpiresAt: set to a time, or ClearExpiry to never expire.
	ExpiresAt   *time.Time
	ClearExpiry bool
	// Budget replaces the key's budget; RemoveBudget takes it away.
	Budget       *ledger.Budget
	RemoveBudget bool
}

// Validate checks an update as Create checks a new key, naming the field.
func (u *Update) Validate(now time.Time) error {
	for field, v := range map[string]*int64{"rpm": u.RPM, "tpm": u.TPM, "max_streams": u.MaxStreams} {
		if v != nil && *v < 0 {
			return &FieldError{field, "must not be negative"}
		}
	}
	if u.ExpiresAt != nil && !u.ExpiresAt.After(now) {
		return &FieldError{"expires_at", "must be in the future"}
	}
	if u.Models != nil {
		if len(*u.Models) > 1000 {
			return &FieldError{"models", "at most 1000 models"}
		}
		for i, m := range *u.Models {
			if m == "" || len(m) > 200 {
				return &FieldError{fmt.Sprintf("models[%d]", i), "must be a model name"}
			}
		}
	}
	return nil
}
