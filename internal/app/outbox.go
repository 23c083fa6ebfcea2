package app

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/outbox"
)

// CrashAtEnv is test-only: "point" or "point:N" (a ledger.Fault* name) makes
// the process SIGKILL itself at the Nth time a bill reaches that point, so
// the crash tests hit exact points without sleeps. Read once at start.
const CrashAtEnv = "TIDEGATE_TEST_CRASH_AT"

// startOutbox opens the meter's outbox, settles the bills a previous
// process left (before serving, so budgets are read with them), and runs
// its fsync-and-drain loop. stop ends the loop and closes the file.
func startOutbox(cfg config.Outbox, meter *ledger.Meter, logger *slog.Logger) (stop func(), err error) {
	ob, err := outbox.Open(cfg.Path, outbox.Options{MaxPending: cfg.MaxPending, MaxBytes: cfg.MaxBytes,
		SyncInterval: cfg.SyncInterval}, logger)
	if err != nil {
		return nil, err
	}
	meter.Outbox = ob
	meter.Fault = crashFault(os.Getenv(CrashAtEnv))
	if waiting, _ := ob.Stats(); waiting > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := ob.Drain(ctx, meter.SettleWaiting)
		cancel()
		logger.Warn("outbox: settled bills left by the previous process", "count", n, "waiting", waiting-n, "error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ob.Run(ctx, meter.SettleWaiting) }()
	return func() { cancel(); <-done; _ = ob.Close() }, nil
}

// crashFault builds the test-only fault hook from CrashAtEnv; nil when unset.
func crashFault(spec string) func(string) {
	if spec == "" {
		return nil
	}
	point, nth, _ := strings.Cut(spec, ":")
	n, err := strconv.Atoi(nth)
	if err != nil || n < 1 {
		n = 1
	}
	var seen atomic.Int64
	return func(p string) {
		if p == point && seen.Add(1) == int64(n) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
