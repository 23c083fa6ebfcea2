// Package secrets keeps provider credentials: the record, and the sealing
// that encrypts them at rest. Where the sealed bytes live is the store's
// business.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"
)

// ErrNotFound is returned when no credential has the given id.
var ErrNotFound = errors.New("secrets: no such credential")

// Credential is a provider API key kept encrypted.
type Credential struct {
	ID        string
	Provider  string
	Name      string
	Secret    string // plaintext, only in memory
	CreatedAt time.Time
}

// Sealer encrypts provider credentials at rest with AES-256-GCM. The row's id
// and provider are the additional data, so a ciphertext copied to another row
// fails to open.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer derives the AES key from a secret (TIDEGATE_SECRET_KEY); any
// length from 16 is accepted and hashed to 32 bytes.
func NewSealer(secret string) (*Sealer, error) {
	if len(secret) < 16 {
		return nil, errors.New("secrets: the secret key must be at least 16 characters")
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

// Seal encrypts a credential's plaintext, bound to its id and provider.
func (s *Sealer) Seal(id, provider, plaintext string) string {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plaintext), aad(id, provider)))
}

// Open decrypts what Seal made for the same id and provider.
func (s *Sealer) Open(id, provider, sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("secrets: credential is damaged")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], aad(id, provider))
	if err != nil {
		return "", errors.New("secrets: credential does not open with this secret key or was moved")
	}
	return string(plain), nil
}
