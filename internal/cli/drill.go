package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/drill"
)

// drillCmd rehearses outages against the sim fleet through a real tidegate.
func drillCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := drill.Options{}
	fs.IntVar(&o.Requests, "requests", 200, "requests per scenario")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "concurrent clients")
	fs.BoolVar(&o.Stream, "stream", false, "stream the answers")
	fs.DurationVar(&o.HedgeAfter, "hedge", 0, "race a second provider after this long without a first token (streams)")
	fs.BoolVar(&o.LatencyOrder, "latency-order", false, "order the providers by learned time to first token (models[].order: latency)")
	scenarios := fs.String("scenario", "", "comma-separated scenarios (default all but tide): "+scenarioNames()+", tide")
	tide := drill.TideOptions{}
	fs.DurationVar(&tide.Day, "day", 72*time.Second, "tide: the compressed day")
	fs.IntVar(&tide.BatchItems, "batch-items", 800, "tide: the batch's size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Requests < 1 || o.Concurrency < 1 {
		return fmt.Errorf("requests and concurrency must be positive")
	}
	dir, err := os.MkdirTemp("", "tidegate-drill-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.Dir = dir
	o.Start = func(ctx context.Context, config string) (string, func() string, func(), error) {
		path := filepath.Join(dir, fmt.Sprintf("drill-%d.yaml", len(config)))
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			return "", nil, nil, err
		}
		return startLogged(ctx, path)
	}
	var names []string
	if *scenarios != "" {
		names = strings.Split(*scenarios, ",")
	}
	if slices.Contains(names, "tide") {
		names = slices.DeleteFunc(names, func(n string) bool { return n == "tide" })
		tide.Dir, tide.Start = o.Dir, o.Start
		fmt.Fprintf(stdout, "tidegate drill --scenario tide: a %v day (trough 04:00, peak 16:00, 20×), the same online traffic on two routes, "+
			"each over two sims (cheap: 12 sequences, 16 tokens/s, 1 CNY/hour; dear: 24 sequences, 64 tokens/s, 10 CNY/hour), "+
			"and a batch of %d items on one of them\n\n", tide.Day, tide.BatchItems)
		if _, err := drill.RunTide(ctx, tide, stdout); err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(drill.Scenarios, func(s drill.Scenario) bool { return s.Name == n }) {
			return fmt.Errorf("--scenario: unknown scenario %q (want one or more of %s)", n, scenarioNames())
		}
	}
	fmt.Fprintf(stdout, "tidegate drill: %d requests per scenario, %d clients, streaming %v, hedging after %v; three sim providers, the primary first\n\n", o.Requests, o.Concurrency, o.Stream, o.HedgeAfter)
	_, err = drill.Run(ctx, o, names, stdout)
	return err
}

func scenarioNames() string {
	var n []string
	for _, s := range drill.Scenarios {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}

// startLogged runs a gateway in this process and keeps its log for the report.
func startLogged(ctx context.Context, configPath string) (string, func() string, func(), error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return "", nil, nil, err
	}
	logs := &lockedLog{}
	r, err := app.Start(ctx, cfg, app.Options{Logger: newLogger(logs, cfg.LogLevel), Version: Version})
	if err != nil {
		return "", nil, nil, err
	}
	return r.URL, logs.String, func() { _ = r.Stop() }, nil
}
