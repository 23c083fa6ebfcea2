package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/evalrun"
)

const evalRunUsage = `usage:
  tidegate eval run NAME --models provider/model,… [--concurrency 8] [--json] [--out DIR] [--config FILE]
  tidegate eval run NAME --run ID      resume a run (after a crash or ^C); its models are kept`

// evalRunCmd: tidegate eval run. It builds tidegate from the config and
// runs the suite in this process through the gateway, so the calls are
// billed to the configured store's ledger like any other (tagged eval).
func evalRunCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the demo)")
	models := fs.String("models", "", "comma-separated provider/model list")
	concurrency := fs.Int("concurrency", evalrun.DefaultConcurrency, "calls at once")
	asJSON := fs.Bool("json", false, "print the scorecard as JSON")
	out := fs.String("out", "", "write scorecard.json, scorecard.svg and items.json to this directory")
	resume := fs.String("run", "", "resume the run of this id")
	lease := fs.Duration("lease", evalrun.DefaultLease, "how long the run is held without renewal; another process takes over after it")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (*models == "") == (*resume == "") {
		return errors.New(evalRunUsage)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, app.Options{Logger: newLogger(stderr, "error"), Version: Version})
	if err != nil {
		return err
	}
	defer a.Close()
	runner := a.Evals
	runner.Lease = *lease
	var run *eval.Run
	if *resume != "" {
		if run, err = a.Store.EvalRun(ctx, *resume); err == nil && run.Suite != pos[0] {
			err = fmt.Errorf("run %s is of suite %s, not %s", run.ID, run.Suite, pos[0])
		}
	} else {
		run, err = runner.Create(ctx, pos[0], strings.Split(*models, ","), *concurrency, eval.OriginCLI)
	}
	if errors.Is(err, eval.ErrNotFound) {
		return fmt.Errorf("no suite named %q", pos[0])
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "run %s: suite %s over %s\n", run.ID, run.Suite, strings.Join(run.Models, ", "))
	bar := newProgressBar(stderr)
	for {
		err = runner.Execute(ctx, run.ID, bar.update)
		if !errors.Is(err, eval.ErrLeased) {
			break
		}
		// A crashed process's lease lapses within one lease period.
		bar.note("run %s is held by another process; waiting for its lease to lapse", run.ID)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(*lease / 3):
		}
	}
	bar.finish()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("run %s stopped; resume it with: tidegate eval run %s --run %s", run.ID, run.Suite, run.ID)
	}
	if run, err = a.Store.EvalRun(context.WithoutCancel(ctx), run.ID); err != nil {
		return err
	}
	results, err := a.Store.RunResults(ctx, run.ID)
	if err != nil {
		return err
	}
	sc := evalrun.Score(run, results)
	if *out != "" {
		if err := writeScorecard(*out, sc, results); err != nil {
			return err
		}
	}
	if *asJSON {
		err = writeIndented(stdout, sc)
	} else {
		err = sc.Table(stdout)
	}
	if err == nil && run.Status == eval.RunFailed {
		err = fmt.Errorf("run %s failed: %s", run.ID, run.Error)
	}
	return err
}

// writeScorecard writes the scorecard's JSON, its plot next to it, and the
// per-item results.
func writeScorecard(dir string, sc *evalrun.Scorecard, results []eval.RunResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var svg strings.Builder
	if err := sc.SVG(&svg); err != nil {
		return err
	}
	files := []struct {
		name string
		v    any
	}{{"scorecard.json", sc}, {"items.json", results}}
	for _, f := range files {
		var b strings.Builder
		if err := writeIndented(&b, f.v); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "scorecard.svg"), []byte(svg.String()), 0o644)
}

// progressBar draws a run's progress on stderr: redrawn in place on a
// terminal, a plain line every tenth otherwise (logs, CI).
type progressBar struct {
	mu        sync.Mutex
	w         io.Writer
	tty       bool
	lastTenth int
	drawn     bool
}

func newProgressBar(w io.Writer) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressBar{w: w, tty: tty, lastTenth: -1}
}

const barWidth = 30

func (p *progressBar) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pct := 100
	if total > 0 {
		pct = done * 100 / total
	}
	if p.tty {
		filled := pct * barWidth / 100
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d %3d%%", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), done, total, pct)
		p.drawn = true
		return
	}
	if tenth := pct / 10; tenth > p.lastTenth {
		p.lastTenth = tenth
		fmt.Fprintf(p.w, "graded %d/%d (%d%%)\n", done, total, pct)
	}
}

func (p *progressBar) note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
