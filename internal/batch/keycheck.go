package batch

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/provider"
)

// KeyFinder looks up the key a batch bills to, as it stands now (the
// store: a key revoked or edited anywhere is seen on the next item).
type KeyFinder interface {
	KeyByID(ctx context.Context, id string) (*keys.Key, error)
}

// keyRefusal re-checks the batch's key before an item is sent: a key
// revoked or expired since the batch was created spends no more, and the
// allowlist is the key's current one, not the snapshot taken at creation.
// It answers the item's result when the item must not go out; nil when it
// may. A batch of the master key (no KeyID) is not checked.
func (e *Executor) keyRefusal(ctx context.Context, b *Batch, model string) (*Result, error) {
	if e.Keys == nil || b.KeyID == "" {
		return nil, nil
	}
	k, err := e.Keys.KeyByID(ctx, b.KeyID)
	if errors.Is(err, keys.ErrNotFound) {
		k, err = &keys.Key{RevokedAt: time.Unix(0, 0)}, nil // deleted: as revoked
	}
	if err != nil {
		return nil, err
	}
	var pe *provider.Error
	switch {
	case !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && !e.now().Before(k.ExpiresAt)):
		pe = &provider.Error{Kind: provider.KindUnauthorized, Code: "invalid_api_key",
			Message: "the API key that created this batch has been revoked or has expired"}
	case !keys.Allows(k, model):
		pe = &provider.Error{Kind: provider.KindForbidden, Code: "model_not_allowed", Param: "model",
			Message: "the API key that created this batch may no longer use this model"}
	default:
		return nil, nil
	}
	return &Result{RequestID: ids.Request(), StatusCode: pe.Kind.Status(), Body: errorBody(pe)}, nil
}

// headModel is the model a line's body names.
func headModel(body json.RawMessage) string {
	var head struct {
		Model string `json:"model"`
	}
	_ = json.Unmarshal(body, &head)
	return head.Model
}
