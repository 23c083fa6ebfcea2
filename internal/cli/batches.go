package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tidegate/tidegate/internal/batch"
)

// batchesCmd lists batches, newest first, with a progress bar each.
func batchesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("batches", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the demo's store)")
	limit := fs.Int("limit", 20, "how many batches")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *limit < 1 || *limit > 10000 {
		return fmt.Errorf("--limit must be from 1 to 10000")
	}
	st, err := configuredStore(ctx, *configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	bs, err := st.Batches(ctx, batch.ListQuery{All: true, Limit: *limit})
	if err != nil {
		return err
	}
	printBatches(stdout, bs)
	return nil
}

// batchBarWidth is a progress bar's length in characters.
const batchBarWidth = 24

// batchBar draws done (█) and failed (▒) items of total.
func batchBar(completed, failed, total int64) string {
	if total <= 0 {
		return "[" + strings.Repeat("·", batchBarWidth) + "]"
	}
	// Both ends are rounded down from cumulative counts, so a finished
	// batch (completed+failed == total) fills the bar exactly.
	completed = max(min(completed, total), 0)
	failed = max(min(failed, total-completed), 0)
	c := int(completed * batchBarWidth / total)
	f := int((completed+failed)*batchBarWidth/total) - c
	return "[" + strings.Repeat("█", c) + strings.Repeat("▒", f) + strings.Repeat("·", batchBarWidth-c-f) + "]"
}

func printBatches(w io.Writer, bs []batch.Batch) {
	if len(bs) == 0 {
		fmt.Fprintln(w, "no batches")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tSTATUS\tPROGRESS\tDONE/FAILED/TOTAL\tENDPOINT\tCREATED")
	for _, b := range bs {
		c := b.Counts
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d/%d\t%s\t%s\n", b.ID, b.Status, batchBar(c.Completed, c.Failed, c.Total),
			c.Completed, c.Failed, c.Total, b.Endpoint, b.CreatedAt.Local().Format(time.DateTime))
	}
	tw.Flush()
}
