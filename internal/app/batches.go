package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/files"
	"github.com/tidegate/tidegate/internal/files/s3"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/metrics"
	"github.com/tidegate/tidegate/internal/store"
)

// FileStorage opens where the Batch API's files live: the S3 bucket when
// configured, else the local folder.
func FileStorage(cfg config.Batches) (files.Storage, error) {
	if c := cfg.S3; c != nil {
		return s3.New(s3.Config{Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket, Prefix: c.Prefix,
			AccessKey: c.AccessKey, SecretKey: c.SecretKey, PathStyle: c.PathStyle})
	}
	return files.NewDisk(cfg.Dir)
}

// startBatches serves the Batch API and starts its executor: River's
// tables migrated on the configured store, a River client working the
// items, and the loop that validates and finalizes batches.
//
// The executor's Gate (a.Batches.Gate) decides when an item may go out:
// the tidal dispatcher (internal/tide), within batches.concurrency River
// workers. Assign another batch.Gate before Serve to replace it.
func (a *App) startBatches(ctx context.Context, gw *gateway.Gateway, catalog *ledger.Catalog) error {
	cfg := a.Config
	if cfg.Batches.Disabled {
		return nil
	}
	storage, err := FileStorage(cfg.Batches)
	if err != nil {
		return fmt.Errorf("batches: %w", err)
	}
	a.Tide = a.newTideGate(gw, catalog)
	e := &batch.Executor{Store: a.Store, Files: storage, Caller: batch.GatewayCaller{G: gw},
		Gate: a.Tide, Keys: a.Store, Logger: a.Logger, CheckBody: httpapi.CheckBatchBody, Served: gw.Router.Serves,
		MaxLine: int(cfg.Server.BodyLimit), Poll: cfg.Batches.Poll, ItemTimeout: cfg.Batches.ItemTimeout}
	e.Init()
	rc := batch.RiverConfig{Workers: cfg.Batches.Concurrency, ItemTimeout: cfg.Batches.ItemTimeout, Logger: a.Logger}
	var stop func(context.Context) error
	if path, ok := strings.CutPrefix(cfg.Store, "sqlite:"); ok {
		db, err := openRiverSQLite(path)
		if err != nil {
			return err
		}
		a.onClose(func() { db.Close() })
		rc.RescueOrphans = func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, batch.SQLiteRescue)
			return err
		}
		driver := riversqlite.New(db)
		if err := prepareRiver(ctx, a.Store, driver, a.skipMigrate, a.Logger); err != nil {
			return err
		}
		if stop, err = batch.StartRiver(ctx, driver, e, rc); err != nil {
			return err
		}
	} else {
		pool, err := openRiverPool(ctx, cfg.Store)
		if err != nil {
			return err
		}
		a.onClose(pool.Close)
		if cfg.Batches.S3 == nil {
			// Several replicas share the PostgreSQL store, each its own disk:
			// a file uploaded through one is missing on the others.
			a.Logger.Warn("batches: files are on this replica's local disk while the store is PostgreSQL; with several replicas set batches.s3 so every replica sees every file",
				"dir", cfg.Batches.Dir)
		}
		driver := riverpgxv5.New(pool)
		if err := prepareRiver(ctx, a.Store, driver, a.skipMigrate, a.Logger); err != nil {
			return err
		}
		if stop, err = batch.StartRiver(ctx, driver, e, rc); err != nil {
			return err
		}
	}
	a.onClose(func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace)
		defer cancel()
		if err := stop(sctx); err != nil {
			a.Logger.Warn("batches: stopping the job queue", "error", err)
		}
	})
	a.background(e.Run)
	a.Batches = e
	a.API.Batch = &httpapi.BatchAPI{Store: a.Store, Files: storage, MaxFileBytes: cfg.Batches.MaxFileBytes,
		Window: cfg.Batches.Window, Wake: e.Wake}
	return nil
}

// openRiverSQLite opens River's own one-connection pool on the SQLite
// store's file: SQLite has one writer, and River's transactions must not
// wait on the store's writer connection (or it on them).
func openRiverSQLite(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("batches: %w", err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// prepareRiver migrates River's tables under the store's migrate lock, or,
// when migrating was left to `tidegate migrate`, checks they are current.
func prepareRiver[TTx any](ctx context.Context, st *store.DB, driver riverdriver.Driver[TTx], skip bool, logger *slog.Logger) error {
	if skip {
		return batch.CheckRiver(ctx, driver)
	}
	return st.UnderMigrateLock(ctx, func(ctx context.Context) error {
		_, err := batch.MigrateRiver(ctx, driver, logger)
		return err
	})
}

// MigrateRiver applies River's migrations (the Batch API's job queue) on
// cfg's store, under st's migrate lock, for `tidegate migrate`; none when
// batches are disabled.
func MigrateRiver(ctx context.Context, cfg *config.Config, st *store.DB, logger *slog.Logger) ([]int, error) {
	if cfg.Batches.Disabled {
		return nil, nil
	}
	var applied []int
	var err error
	if path, ok := strings.CutPrefix(cfg.Store, "sqlite:"); ok {
		db, oerr := openRiverSQLite(path)
		if oerr != nil {
			return nil, oerr
		}
		defer db.Close()
		err = st.UnderMigrateLock(ctx, func(ctx context.Context) (err error) {
			applied, err = batch.MigrateRiver(ctx, riversqlite.New(db), logger)
			return err
		})
	} else {
		pool, oerr := openRiverPool(ctx, cfg.Store)
		if oerr != nil {
			return nil, oerr
		}
		defer pool.Close()
		err = st.UnderMigrateLock(ctx, func(ctx context.Context) (err error) {
			applied, err = batch.MigrateRiver(ctx, riverpgxv5.New(pool), logger)
			return err
		})
	}
	return applied, err
}

// openBatches lists the batches not yet final (the store).
type openBatches interface {
	OpenBatches(ctx context.Context) ([]batch.Batch, error)
}

// batchProgress sums the open batches for the metrics, at each scrape.
func batchProgress(st openBatches, logger *slog.Logger) func() (metrics.BatchProgress, bool) {
	return func() (metrics.BatchProgress, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		open, err := st.OpenBatches(ctx)
		if err != nil {
			logger.Warn("metrics: reading open batches failed", "error", err)
			return metrics.BatchProgress{}, false
		}
		p := metrics.BatchProgress{ByStatus: map[string]int64{}, Items: map[string]int64{}, Progress: map[string]float64{}}
		for _, b := range open {
			p.ByStatus[string(b.Status)]++
			p.Items["completed"] += b.Counts.Completed
			p.Items["failed"] += b.Counts.Failed
			p.Items["running"] += b.Counts.Running
			p.Items["pending"] += b.Counts.Pending
			if b.Counts.Total > 0 {
				p.Progress[b.ID] = float64(b.Counts.Completed+b.Counts.Failed) / float64(b.Counts.Total)
			}
		}
		return p, true
	}
}
