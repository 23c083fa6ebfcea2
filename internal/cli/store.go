package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/postgres"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// SecretKeyEnv names the environment variable holding the key that encrypts
// provider credentials at rest.
const SecretKeyEnv = "TIDEGATE_SECRET_KEY"

// openStore opens the configured store: sqlite:PATH or postgres://….
func openStore(ctx context.Context, dsn string) (*store.DB, error) {
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		return sqlite.Open(ctx, path)
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgres.Open(ctx, dsn)
	}
	return nil, fmt.Errorf("store: want sqlite:PATH or postgres://…, got %q", dsn)
}

// loadConfig reads --config, or the demo's default when there is none.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// configuredStore loads --config and opens its store.
func configuredStore(ctx context.Context, configPath string) (*store.DB, error) {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	return openStore(ctx, cfg.Store)
}

// newCatalog builds the price catalog with the config's overrides.
func newCatalog(cfg *config.Config) (*ledger.Catalog, error) {
	var overrides []ledger.Price
	for _, p := range cfg.Prices {
		name, model, _ := strings.Cut(p.Model, "/")
		var eff time.Time
		if p.Effective != "" {
			eff, _ = time.Parse("2006-01-02", p.Effective)
		}
		overrides = append(overrides, ledger.Price{Provider: name, Model: model, Currency: p.Currency, Effective: eff,
			Input: p.Input, Output: p.Output, CachedInput: p.CachedInput, CacheWrite: p.CacheWrite, Source: "config override"})
	}
	return ledger.NewCatalog(overrides)
}
