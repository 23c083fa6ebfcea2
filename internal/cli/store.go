package cli

import (
	"context"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/store"
)

// openStore opens the configured store: sqlite:PATH or postgres://….
func openStore(ctx context.Context, dsn string) (*store.DB, error) { return app.OpenStore(ctx, dsn) }

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
