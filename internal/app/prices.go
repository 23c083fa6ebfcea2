package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
)

// priceRefresh is how often a replica rereads the stored prices: with
// abilityRefresh after it, a price posted to any replica moves every
// replica's ability routes within 30 s.
const priceRefresh = 10 * time.Second

// priceStore keeps the admin API's prices: the store.
type priceStore interface {
	PutPrice(ctx context.Context, p ledger.Price) error
	Prices(ctx context.Context) ([]ledger.Price, error)
}

// priceBook serves /admin/prices and keeps the catalog's stored prices
// current: httpapi.PriceBook.
type priceBook struct {
	store     priceStore
	catalog   *ledger.Catalog
	providers map[string]bool // configured names
	abilities map[string]*ability.Route
	logger    *slog.Logger
	notify    notifier
	changed   <-chan struct{} // a price was posted, on any replica
}

func newPriceBook(st priceStore, catalog *ledger.Catalog, providers []config.Provider, abilities map[string]*ability.Route, logger *slog.Logger, n notifier) *priceBook {
	b := &priceBook{store: st, catalog: catalog, providers: map[string]bool{}, abilities: abilities, logger: logger,
		notify: n, changed: n.Subscribe(topicPrices)}
	for _, p := range providers {
		b.providers[p.Name] = true
	}
	return b
}

// SetPrice stores a price and puts it in force here at once: the catalog
// reread, then the ability routes recalibrated on it.
func (b *priceBook) SetPrice(ctx context.Context, p ledger.Price) error {
	if !b.providers[p.Provider] {
		return &keys.FieldError{Field: "model", Message: fmt.Sprintf("no provider is named %q", p.Provider)}
	}
	if err := b.store.PutPrice(ctx, p); err != nil {
		return err
	}
	b.logger.Info("price stored", "provider", p.Provider, "model", p.Model, "currency", p.Currency,
		"input", p.Input, "output", p.Output, "effective", p.Effective)
	if err := b.reload(ctx); err != nil {
		return err
	}
	b.refreshAbilities(ctx)
	b.notify.Notify(ctx, topicPrices)
	return nil
}

// refreshAbilities recalibrates the ability routes on the current prices.
func (b *priceBook) refreshAbilities(ctx context.Context) {
	for _, r := range b.abilities {
		if err := r.Refresh(ctx); err != nil {
			b.logger.Warn("ability route refresh failed", "route", r.Name, "error", err)
		}
	}
}

// Prices lists the stored prices.
func (b *priceBook) Prices(ctx context.Context) ([]ledger.Price, error) { return b.store.Prices(ctx) }

// reload rereads the stored prices into the catalog.
func (b *priceBook) reload(ctx context.Context) error {
	ps, err := b.store.Prices(ctx)
	if err != nil {
		return fmt.Errorf("stored prices: %w", err)
	}
	return b.catalog.SetStored(ps)
}

// run rereads the stored prices when any replica posts one (a
// notification) and every interval until ctx ends (the backstop for a
// lost notification).
func (b *priceBook) run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		notified := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.changed:
			notified = true
		}
		if err := b.reload(ctx); err != nil && ctx.Err() == nil {
			b.logger.Warn("stored prices reload failed", "error", err)
			continue
		}
		if notified {
			b.refreshAbilities(ctx)
		}
	}
}
