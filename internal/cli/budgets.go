package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store"
)

// budgetsCmd prints every key and project budget with its spend this period.
func budgetsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("budgets", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the demo's store)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := configuredStore(ctx, *configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	bs, err := st.BudgetStatuses(ctx, time.Now())
	if err != nil {
		return err
	}
	return printBudgets(stdout, bs, *asJSON, st.Dialect() == store.SQLite)
}

func printBudgets(w io.Writer, bs []ledger.BudgetStatus, asJSON, sqlite bool) error {
	views := httpapi.BudgetViews(bs)
	if asJSON {
		return json.NewEncoder(w).Encode(views)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tNAME\tPERIOD\tLIMIT\tSPENT\tHELD\tREMAINING\tRESETS\tMODE")
	for _, v := range views {
		resets, mode := "never", "hard"
		if v.PeriodEnd != nil {
			resets = v.PeriodEnd.Local().Format("2006-01-02 15:04")
		}
		if v.Soft {
			mode = "soft"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f %s\t%.4f\t%.4f\t%.4f\t%s\t%s\n", v.Scope, v.Name, v.Period, v.Limit, v.Currency, v.Spent, v.Held, v.Remaining, resets, mode)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if sqlite && len(views) > 0 {
		// SQLite's holds live in the gateway's memory, not in the store.
		fmt.Fprintln(w, "\nheld: requests in flight are held in the gateway's memory with SQLite; GET /admin/budgets on the gateway shows them")
	}
	return nil
}
