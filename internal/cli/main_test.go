package cli

import (
	"context"
	"os"
	"testing"
)

// TestMain lets a test start this binary as a real `tidegate` process (for
// the crash test's SIGKILL): with TIDEGATE_TEST_MAIN=1 it runs Main instead.
func TestMain(m *testing.M) {
	if os.Getenv("TIDEGATE_TEST_MAIN") == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
