package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tidegate/tidegate/internal/ledger"
)

// PutPrice stores a dated price for every replica; a price of the same
// model and start replaces it. The caller validates it first.
func (s *DB) PutPrice(ctx context.Context, p ledger.Price) error {
	var cached sql.NullFloat64
	if p.CachedInput != nil {
		cached = sql.NullFloat64{Float64: *p.CachedInput, Valid: true}
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO prices (provider, model, effective, currency, input, output, cached_input, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (provider, model, effective) DO UPDATE SET currency = excluded.currency, input = excluded.input,
			output = excluded.output, cached_input = excluded.cached_input, created_at = excluded.created_at`),
		p.Provider, p.Model, micros(p.Effective), p.Currency, p.Input, p.Output, cached, micros(s.now()))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Prices lists the stored prices by provider, model and start.
func (s *DB) Prices(ctx context.Context) ([]ledger.Price, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT provider, model, effective, currency, input, output, cached_input FROM prices ORDER BY provider, model, effective`)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []ledger.Price{}
	for rows.Next() {
		var p ledger.Price
		var eff int64
		var cached sql.NullFloat64
		if err := rows.Scan(&p.Provider, &p.Model, &eff, &p.Currency, &p.Input, &p.Output, &cached); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		p.Effective, p.Source = fromMicros(eff), ledger.SourceStored
		if cached.Valid {
			p.CachedInput = &cached.Float64
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
