package batch

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
)

// MigrateRiver applies River's migrations not yet applied (each in its own
// transaction, River's way) and returns their versions. It does not lock:
// the caller holds the store's migrate lock so replicas apply them once.
func MigrateRiver[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], logger *slog.Logger) ([]int, error) {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("batch: river migrations: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("batch: river migrations: %w", err)
	}
	vs := make([]int, len(res.Versions))
	for i, v := range res.Versions {
		vs[i] = v.Version
	}
	return vs, nil
}

// CheckRiver fails unless River's migrations are all applied: a replica
// told not to migrate must not run the job queue on older tables.
func CheckRiver[TTx any](ctx context.Context, driver riverdriver.Driver[TTx]) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("batch: river migrations: %w", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("batch: checking River's schema: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("batch: River's job tables are behind (%s): run `tidegate migrate` first", strings.Join(res.Messages, "; "))
	}
	return nil
}
