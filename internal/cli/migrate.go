package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tidegate/tidegate/internal/app"
)

// migrateCmd applies the store's migrations once and exits: run it before
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
	applied := st.Migrated()
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "store schema is current: no migration to apply")
		return nil
	}
	vs := make([]string, len(applied))
	for i, v := range applied {
		vs[i] = strconv.Itoa(v)
	}
	fmt.Fprintf(stdout, "applied %d migration(s): %s\n", len(applied), strings.Join(vs, ", "))
	return nil
}
