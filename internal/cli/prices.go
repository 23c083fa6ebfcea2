package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/ledger"
)

// pricesCmd prints the price catalog: shipped entries, config overrides and
// the prices stored through POST /admin/prices (source "stored").
func pricesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (its price overrides are shown too)")
	provider := fs.String("provider", "", "only this provider type or name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	cat, err := app.Catalog(cfg)
	if err != nil {
		return err
	}
	if err := addStored(ctx, cfg.Store, cat); err != nil {
		fmt.Fprintf(stderr, "tidegate prices: stored prices not shown: %v\n", err)
	}
	// --provider takes a type (deepseek) or a configured name: a name also
	// shows the shipped prices of its type, which it is billed by.
	typeOf := map[string]string{}
	for _, p := range cfg.Providers {
		typeOf[p.Name] = p.Type
	}
	wanted := func(p string) bool {
		return *provider == "" || p == *provider || (typeOf[*provider] != "" && p == typeOf[*provider])
	}
	opt := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tMODEL\tFROM\tCUR\tINPUT\tCACHED\tCACHE WRITE\tOUTPUT\tBATCH IN/OUT\tBAND\tWHEN\tSOURCE")
	for _, p := range cat.All() {
		if !wanted(p.Provider) {
			continue
		}
		from := "always"
		if !p.Effective.IsZero() {
			from = p.Effective.Format("2006-01-02")
		}
		if !p.Effective.Equal(p.Effective.Truncate(24 * time.Hour)) {
			from = p.Effective.UTC().Format(time.RFC3339) // a stored price starts at any instant
		}
		band := "-"
		if p.BandAbove > 0 {
			band = fmt.Sprintf(">%d", p.BandAbove)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%g\t%s\t%s\t%g\t%s/%s\t%s\t%s\t%s\n", p.Provider, p.Model, from, p.Currency, p.Input,
			opt(p.CachedInput), opt(p.CacheWrite), p.Output, opt(p.BatchInput), opt(p.BatchOutput), band, orDash(p.When), p.Source)
	}
	fmt.Fprintln(tw, "\nper 1M tokens; a row applies from its date until the next row of the same model")
	return tw.Flush()
}

// addStored puts the store's prices in the catalog. A SQLite store that
// does not exist yet holds none, and is not created just to be read.
func addStored(ctx context.Context, dsn string, cat *ledger.Catalog) error {
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	st, err := openStore(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	stored, err := st.Prices(ctx)
	if err != nil {
		return err
	}
	return cat.SetStored(stored)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// usageCmd prints a usage report from the ledger, as a table or CSV.
func usageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the demo's store)")
	groupBy := fs.String("group-by", "model", "key, project, model, provider, purpose or day")
	from := fs.String("from", "", "start (RFC 3339 or YYYY-MM-DD; default 30 days ago)")
	to := fs.String("to", "", "end, exclusive (default now)")
	asCSV := fs.Bool("csv", false, "print CSV")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, t, err := httpapi.ParseRange(*from, *to, time.Now())
	if err != nil {
		return err
	}
	st, err := configuredStore(ctx, *configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	return printUsage(ctx, st, *groupBy, f, t, *asCSV, stdout)
}

// usageReporter sums the ledger by a dimension over a time range.
type usageReporter interface {
	UsageReport(ctx context.Context, groupBy string, from, to time.Time) ([]ledger.ReportRow, error)
	keyLister
}

// printUsage writes the report as a table, or as CSV.
func printUsage(ctx context.Context, st usageReporter, groupBy string, from, to time.Time, asCSV bool, stdout io.Writer) error {
	rows, err := st.UsageReport(ctx, groupBy, from, to)
	if err != nil {
		return err
	}
	var views []httpapi.UsageRowView
	for _, r := range rows {
		views = append(views, httpapi.UsageRowView{Group: r.Group, Currency: r.Currency, Requests: r.Requests, PromptTokens: r.PromptTokens,
			CompletionTokens: r.CompletionTokens, CachedTokens: r.CachedTokens, Cost: float64(r.Cost) / 1e6, Unpriced: r.Unpriced, Estimated: r.Estimated})
	}
	if err := httpapi.NameUsageGroups(ctx, st, groupBy, views); err != nil {
		return err
	}
	if asCSV {
		httpapi.WriteUsageCSV(stdout, groupBy, views)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tCUR\tREQUESTS\tPROMPT\tCOMPLETION\tCACHED\tCOST\tUNPRICED\tESTIMATED\t\n", groupBy)
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.6f\t%d\t%d\t\n", v.Group, v.Currency, v.Requests, v.PromptTokens, v.CompletionTokens, v.CachedTokens, v.Cost, v.Unpriced, v.Estimated)
	}
	return tw.Flush()
}
