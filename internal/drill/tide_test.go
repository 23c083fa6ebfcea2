package drill_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/drill"
)

// TestTide is the tidal dispatcher's acceptance, measured in one run: the
// same compressed day of online traffic (20× between trough and peak) on
// two routes, each over its own pair of sims over HTTP (a cheap slow card
// and a dear fast one, serving vLLM's metric names), and a batch larger
// than the troughs absorb on one of them. The pool with the batch is used
// at least twice as much as the online-only pool (sequence-seconds from
// the sims' own accounting); online p99 time to first token stays within
// 5% of the online-only pool's; every batch item is answered once in the
// output file. The sims' time to first token is 1 s, so the p99 is the
// model's own unless a request waits for a slot: the 5% is room for the
// machine's noise, which falls on both routes alike. About 90 s.
func TestTide(t *testing.T) {
	if testing.Short() {
		t.Skip("the tide drill takes about 90 s; -short skips it")
	}
	dir := t.TempDir()
	o := drill.TideOptions{Day: 60 * time.Second, BatchItems: 600, Dir: dir,
		Start: func(ctx context.Context, text string) (string, func() string, func(), error) {
			path := filepath.Join(dir, "tide.yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				return "", nil, nil, err
			}
			cfg, err := config.Load(path)
			if err != nil {
				return "", nil, nil, err
			}
			r, err := app.Start(ctx, cfg, app.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return "", nil, nil, err
			}
			return r.URL, func() string { return "" }, func() { _ = r.Stop() }, nil
		}}
	var out strings.Builder
	res, err := drill.RunTide(context.Background(), o, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	online, tide := res.Whole.Util[0], res.Whole.Util[1]
	if tide < 2*online {
		t.Errorf("utilization with the batch %.1f%%, want at least twice the online-only %.1f%%", 100*tide, 100*online)
	}
	if p99, base := res.Whole.P99[1], res.Whole.P99[0]; float64(p99) > 1.05*float64(base) {
		t.Errorf("online p99 time to first token with the batch %v, want within 5%% of the online-only %v", p99, base)
	}
	if res.OnlineFailures != [2]int{} {
		t.Errorf("online requests failed: %v (online only, with batch)", res.OnlineFailures)
	}
	// Larger than the troughs absorb: items were still open when the
	// morning trough (the first two phases) ended.
	if done := res.Phases[1].BatchDone; done >= res.BatchItems {
		t.Errorf("the batch was done (%d items) by the end of the trough: too small to test the tide", done)
	}
	if res.BatchStatus != "completed" || res.OutputLines != res.BatchItems || res.ErrorLines != 0 || res.Missing != 0 || res.Duplicates != 0 {
		t.Errorf("batch %s: %d output lines, %d error lines, %d custom_ids missing, %d repeated; want completed with each of %d once",
			res.BatchStatus, res.OutputLines, res.ErrorLines, res.Missing, res.Duplicates, res.BatchItems)
	}
}
