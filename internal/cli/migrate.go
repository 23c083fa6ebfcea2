package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/tidegate/tidegate/internal/app"
)

// migrateCmd applies the store's migrations and River's (the batch job
// queue's tables) once and exits: run it before
// a rollout (a Job, an init step) and start the replicas with
// `serve --no-migrate`. On PostgreSQL it waits for, rather than races, a
// migrator already running.
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML); none: the demo's SQLite store")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	st, err := app.OpenStoreWith(ctx, cfg.Store, app.StoreOptions(cfg, false))
	if err != nil {
		return err
	}
	defer st.Close()
	river, err := app.MigrateRiver(ctx, cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	applied := st.Migrated()
	if len(applied) == 0 && len(river) == 0 {
		fmt.Fprintln(stdout, "store schema is current (River's job tables too): no migration to apply")
		return nil
	}
	if len(applied) > 0 {
		fmt.Fprintf(stdout, "applied %d migration(s): %s\n", len(applied), joinInts(applied))
	}
	if len(river) > 0 {
		fmt.Fprintf(stdout, "applied %d River migration(s) (the batch job queue): %s\n", len(river), joinInts(river))
	}
	return nil
}

func joinInts(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}
