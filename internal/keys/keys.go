// Package keys issues and checks virtual keys: "tg-" and 43 random
// characters, shown once, stored only as a SHA-256 hash.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/ledger"
)

// Prefix types every virtual key.
const Prefix = "tg-"

// maxKeyLen bounds what is worth hashing: a longer value cannot be a key.
const maxKeyLen = 64

// Generate makes a new key and its hash.
func Generate() (key, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	key = Prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, Hash(key)
}

// Hash is the stored form of a key.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// ErrInvalid is every reason a presented key fails; callers learn no more,
// so a response never tells a revoked key from one that never existed.
var ErrInvalid = errors.New("invalid API key")

// Check finds a live key for a presented value: well-formed, known, not
// revoked, not expired. The hash comparison runs in constant time.
func Check(ctx context.Context, f Finder, presented string, now time.Time) (*Key, error) {
	if !strings.HasPrefix(presented, Prefix) || len(presented) > maxKeyLen {
		return nil, ErrInvalid
	}
	h := Hash(presented)
	k, err := f.KeyByHash(ctx, h)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) != 1 {
		return nil, ErrInvalid
	}
	if !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
		return nil, ErrInvalid
	}
	return k, nil
}

// Allows reports whether a key may use a model (an empty list allows all).
func Allows(k *Key, model string) bool {
	if len(k.Models) == 0 {
		return true
	}
	for _, m := range k.Models {
		if m == model {
			return true
		}
	}
	return false
}

// BudgetSpec is a budget as the admin API and CLI take it.
type BudgetSpec struct {
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
	Period   string  `json:"period"`
	Soft     bool    `json:"soft,omitempty"`
}

// CreateRequest is POST /admin/keys.
type CreateRequest struct {
	Name       string      `json:"name"`
	Project    string      `json:"project"`
	Models     []string    `json:"models"`
	RPM        int64       `json:"rpm"`
	TPM        int64       `json:"tpm"`
	MaxStreams int64       `json:"max_streams"`
	ExpiresAt  *time.Time  `json:"expires_at"`
	Budget     *BudgetSpec `json:"budget"`
}

// validName: 1–100 letters, digits, spaces or ._:@/- (a function, not a
// regexp: Unicode classes compile to megabytes of tables).
func validName(s string) bool {
	n := 0
	for _, r := range s {
		n++
		if !unicode.IsLetter(r) && !unicode.IsNumber(r) && !strings.ContainsRune(" ._:@/-", r) {
			return false
		}
	}
	return n >= 1 && n <= 100 && utf8.ValidString(s)
}

// FieldError names the field a request got wrong.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ToBudget validates a budget spec and converts it to micro-units.
func (b *BudgetSpec) ToBudget(field string) (*ledger.Budget, error) {
	switch {
	case b.Amount <= 0 || math.IsInf(b.Amount, 0) || math.IsNaN(b.Amount) || b.Amount > 1e12:
		return nil, &FieldError{field + ".amount", "must be a positive amount"}
	case b.Currency != "CNY" && b.Currency != "USD":
		return nil, &FieldError{field + ".currency", "must be CNY or USD"}
	case b.Period != ledger.PeriodDay && b.Period != ledger.PeriodMonth && b.Period != ledger.PeriodTotal:
		return nil, &FieldError{field + ".period", "must be day, month or total"}
	}
	return &ledger.Budget{Currency: b.Currency, Amount: int64(math.Round(b.Amount * 1e6)), Period: b.Period, Soft: b.Soft}, nil
}

// Validate checks a creation request, naming the field at fault.
func (r *CreateRequest) Validate(now time.Time) error {
	switch {
	case !validName(r.Name):
		return &FieldError{"name", "1–100 letters, digits, spaces or ._:@/-"}
	case !validName(r.Project):
		return &FieldError{"project", "1–100 letters, digits, spaces or ._:@/-"}
	case r.RPM < 0 || r.TPM < 0 || r.MaxStreams < 0:
		return &FieldError{"rpm", "limits must not be negative"}
	case r.ExpiresAt != nil && !r.ExpiresAt.After(now):
		return &FieldError{"expires_at", "must be in the future"}
	case len(r.Models) > 1000:
		return &FieldError{"models", "at most 1000 models"}
	}
	for i, m := range r.Models {
		if m == "" || len(m) > 200 {
			return &FieldError{fmt.Sprintf("models[%d]", i), "must be a model name"}
		}
	}
	if r.Budget != nil {
		if _, err := r.Budget.ToBudget("budget"); err != nil {
			return err
		}
	}
	return nil
}

// Created is a new key: the only time its secret is shown.
type Created struct {
	Key    string
	Stored *Key
}

// Create validates and stores a key, returning its secret once.
func Create(ctx context.Context, s Creator, r *CreateRequest, now time.Time) (*Created, error) {
	if err := r.Validate(now); err != nil {
		return nil, err
	}
	p, err := s.EnsureProject(ctx, r.Project)
	if err != nil {
		return nil, err
	}
	secret, hash := Generate()
	k := &Key{ID: ids.New("key"), Hash: hash, Prefix: secret[:len(Prefix)+4], Name: r.Name,
		ProjectID: p.ID, ProjectName: p.Name, Models: r.Models, RPM: r.RPM, TPM: r.TPM, MaxStreams: r.MaxStreams, CreatedAt: now.UTC()}
	if r.ExpiresAt != nil {
		k.ExpiresAt = r.ExpiresAt.UTC()
	}
	if r.Budget != nil {
		k.Budget, _ = r.Budget.ToBudget("budget")
	}
	if err := s.CreateKey(ctx, k); err != nil {
		return nil, err
	}
	return &Created{Key: secret, Stored: k}, nil
}
