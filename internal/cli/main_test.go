package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestMain lets a test start this binary as a real `tidegate` process (for
// the crash test's SIGKILL): with TIDEGATE_TEST_MAIN=1 it runs Main instead,
// draining on SIGTERM as cmd/tidegate does (the rolling-restart test).
func TestMain(m *testing.M) {
	if os.Getenv("TIDEGATE_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
