package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

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

// configuredStore loads --config and opens its store, which must exist: a
// command run from another folder than the gateway's would otherwise make
// an empty SQLite store there and report on it as if it were the real one.
func configuredStore(ctx context.Context, configPath string) (*store.DB, error) {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	return openExistingStore(ctx, cfg.Store, configPath)
}

// openExistingStore opens a store, refusing to create a new SQLite file.
func openExistingStore(ctx context.Context, dsn, configPath string) (*store.DB, error) {
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			where := "the demo's store"
			if configPath != "" {
				where = "the store of " + configPath
			}
			wd, _ := os.Getwd()
			return nil, fmt.Errorf("%s, %s, does not exist (looked from %s): run this where `tidegate serve` ran, or pass --config with the gateway's config", where, path, wd)
		}
	}
	return openStore(ctx, dsn)
}

// storeForWrite opens the configured store for a command that writes (keys
// create): a new SQLite store may be made, ahead of the gateway's first
// start, but the command says so, naming it.
func storeForWrite(ctx context.Context, configPath string, stderr io.Writer) (*store.DB, error) {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	if path, ok := strings.CutPrefix(cfg.Store, "sqlite:"); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "tidegate: no store at %s yet; creating it (a gateway started with the same config will use it)\n", path)
		}
	}
	return openStore(ctx, cfg.Store)
}
