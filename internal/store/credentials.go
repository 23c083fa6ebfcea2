package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Sealer encrypts provider credentials at rest with AES-256-GCM. The row's id
// and provider are the additional data, so a ciphertext copied to another row
// fails to open.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer derives the AES key from a secret (TIDEGATE_SECRET_KEY); any
// length is accepted and hashed to 32 bytes.
func NewSealer(secret string) (*Sealer, error) {
	if len(secret) < 16 {
		return nil, errors.New("store: the secret key must be at least 16 characters")
	}
	k := sha256.Sum256([]byte("tidegate credentials v1\x00" + secret))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

func aad(id, provider string) []byte { return []byte(id + "\x00" + provider) }

func (s *Sealer) seal(id, provider, plaintext string) string {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plaintext), aad(id, provider)))
}

func (s *Sealer) open(id, provider, sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("store: credential is damaged")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], aad(id, provider))
	if err != nil {
		return "", errors.New("store: credential does not open with this secret key or was moved")
	}
	return string(plain), nil
}

// Credential is a provider API key kept encrypted.
type Credential struct {
	ID        string
	Provider  string
	Name      string
	Secret    string // plaintext, only in memory
	CreatedAt time.Time
}

// AddCredential encrypts and stores a credential; several per provider are allowed.
func (s *DB) AddCredential(ctx context.Context, sl *Sealer, c *Credential) error {
	c.ID, c.CreatedAt = NewID("cred"), s.now().UTC()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO credentials (id, provider, name, ciphertext, created_at) VALUES (?, ?, ?, ?, ?)`),
		c.ID, c.Provider, c.Name, sl.seal(c.ID, c.Provider, c.Secret), micros(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Credentials lists credentials, decrypted when a sealer is given ("" provider: all).
func (s *DB) Credentials(ctx context.Context, sl *Sealer, provider string) ([]Credential, error) {
	query, args := `SELECT id, provider, name, ciphertext, created_at FROM credentials ORDER BY created_at, id`, []any{}
	if provider != "" {
		query, args = `SELECT id, provider, name, ciphertext, created_at FROM credentials WHERE provider = ? ORDER BY created_at, id`, []any{provider}
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		var c Credential
		var sealed string
		var created int64
		if err := rows.Scan(&c.ID, &c.Provider, &c.Name, &sealed, &created); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		c.CreatedAt = fromMicros(created)
		if sl != nil {
			if c.Secret, err = sl.open(c.ID, c.Provider, sealed); err != nil {
				return nil, fmt.Errorf("credential %s: %w", c.ID, err)
			}
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteCredential removes a credential.
func (s *DB) DeleteCredential(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM credentials WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
