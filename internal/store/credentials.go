package store

import (
	"context"
	"fmt"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/secrets"
)

// AddCredential encrypts and stores a credential; several per provider are allowed.
func (s *DB) AddCredential(ctx context.Context, sl *secrets.Sealer, c *secrets.Credential) error {
	c.ID, c.CreatedAt = ids.New("cred"), s.now().UTC()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO credentials (id, provider, name, ciphertext, created_at) VALUES (?, ?, ?, ?, ?)`),
		c.ID, c.Provider, c.Name, sl.Seal(c.ID, c.Provider, c.Secret), micros(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Credentials lists credentials, decrypted when a sealer is given ("" provider: all).
func (s *DB) Credentials(ctx context.Context, sl *secrets.Sealer, provider string) ([]secrets.Credential, error) {
	query, args := `SELECT id, provider, name, ciphertext, created_at FROM credentials ORDER BY created_at, id`, []any{}
	if provider != "" {
		query, args = `SELECT id, provider, name, ciphertext, created_at FROM credentials WHERE provider = ? ORDER BY created_at, id`, []any{provider}
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []secrets.Credential
	for rows.Next() {
		var c secrets.Credential
		var sealed string
		var created int64
		if err := rows.Scan(&c.ID, &c.Provider, &c.Name, &sealed, &created); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		c.CreatedAt = fromMicros(created)
		if sl != nil {
			if c.Secret, err = sl.Open(c.ID, c.Provider, sealed); err != nil {
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
		return secrets.ErrNotFound
	}
	return nil
}
