// Package cli is tidegate's command line: one file per subcommand.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// Version is set at build time with -ldflags "-X …/cli.Version=…".
var Version = "dev"

const usage = `tidegate: one OpenAI- and Anthropic-compatible endpoint for every LLM provider.

Usage:
  tidegate serve [--config FILE] [--listen ADDR]   run the gateway (no config: the sim demo; --no-migrate: schema migrated apart)
  tidegate migrate [--config FILE]                  apply the store's (and River's) migrations once and exit
  tidegate sim [--listen ADDR] [--seed N]           serve the sim fleet as an OpenAI-compatible upstream
  tidegate bench [flags]                            measure gateway overhead against a direct call
  tidegate keys create|list|revoke [flags]          manage virtual keys (on the configured store)
  tidegate budgets [--config FILE]                  spend against each key's and project's budget
  tidegate batches [--config FILE] [--limit N]      batches with progress bars (completed/failed/total)
  tidegate prices [--config FILE]                   print the price catalog
  tidegate usage [--group-by model] [--csv]         usage report from the ledger
  tidegate drill [--scenario down,outage] [--stream] rehearse provider outages on the sim fleet
  tidegate diagnose REQUEST_ID [--json]             one request's timeline and who was slow
  tidegate status [--url URL]                       each target's health over the last hour and day
  tidegate eval add|list|show|delete [flags]        eval suites (add NAME FILE.jsonl, or add demo --builtin)
  tidegate version                                  print the version
`

// Main runs a subcommand and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], stdout, stderr)
	case "sim":
		err = simServe(ctx, args[1:], stdout, stderr)
	case "bench":
		err = benchCmd(ctx, args[1:], stdout, stderr)
	case "bench-relay": // the paced bench's yardstick (bench --floor), not in the usage
		err = benchRelay(ctx, args[1:], stdout, stderr)
	case "keys":
		err = keysCmd(ctx, args[1:], stdout, stderr)
	case "prices":
		err = pricesCmd(ctx, args[1:], stdout, stderr)
	case "budgets":
		err = budgetsCmd(ctx, args[1:], stdout, stderr)
	case "batches":
		err = batchesCmd(ctx, args[1:], stdout, stderr)
	case "usage":
		err = usageCmd(ctx, args[1:], stdout, stderr)
	case "drill":
		err = drillCmd(ctx, args[1:], stdout, stderr)
	case "diagnose":
		err = diagnoseCmd(ctx, args[1:], stdout, stderr)
	case "status":
		err = statusCmd(ctx, args[1:], stdout, stderr)
	case "eval":
		err = evalCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "tidegate", Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "tidegate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag set printed the command's usage
	}
	if err != nil {
		fmt.Fprintf(stderr, "tidegate %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// lockedLog collects a log written from many goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
