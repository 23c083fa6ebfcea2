package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
		Gate: a.Tide, Logger: a.Logger, CheckBody: httpapi.CheckBatchBody,
		MaxLine: int(cfg.Server.BodyLimit), Poll: cfg.Batches.Poll}
	e.Init()
	rc := batch.RiverConfig{Workers: cfg.Batches.Concurrency, ItemTimeout: cfg.Batches.ItemTimeout, Logger: a.Logger}
	var stop func(context.Context) error
	if path, ok := strings.CutPrefix(cfg.Store, "sqlite:"); ok {
		// River gets its own one-connection pool on the same file: SQLite
		// has one writer, and River's transactions must not wait on the
		// store's writer connection (or it on them).
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate")
		if err != nil {
			return fmt.Errorf("batches: %w", err)
		}
		db.SetMaxOpenConns(1)
		a.onClose(func() { db.Close() })
		rc.RescueOrphans = func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, batch.SQLiteRescue)
			return err
		}
		stop, err = batch.StartRiver(ctx, riversqlite.New(db), e, rc)
		if err != nil {
			return err
		}
	} else {
		pool, err := pgxpool.New(ctx, cfg.Store)
		if err != nil {
			return fmt.Errorf("batches: %w", err)
		}
		a.onClose(pool.Close)
		if stop, err = batch.StartRiver(ctx, riverpgxv5.New(pool), e, rc); err != nil {
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
