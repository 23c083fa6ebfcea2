package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/timing"
)

// diagnoseCmd prints one request's timeline and verdict from the request log.
func diagnoseCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the demo's store)")
	asJSON := fs.Bool("json", false, "print the record as JSON")
	wait := fs.Duration("wait", 2*time.Second, "how long to wait for a request the log has not written yet")
	if err := fs.Parse(reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: tidegate diagnose [--config FILE] [--json] REQUEST_ID")
	}
	id := fs.Arg(0)
	st, err := configuredStore(ctx, *configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	// The server writes its log in batches, every 100 ms.
	deadline := time.Now().Add(*wait)
	rec, err := reqlog.Lookup(ctx, st, id)
	for errors.Is(err, reqlog.ErrNotFound) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		rec, err = reqlog.Lookup(ctx, st, id)
	}
	if errors.Is(err, reqlog.ErrNotFound) {
		return fmt.Errorf("no request %q in the request log (it keeps %s; is the log on?)", id, "observe.request_log.retention")
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rec)
	}
	printTimeline(stdout, rec)
	return nil
}

// reorderFlags lets flags follow the positional argument ("diagnose ID --json").
func reorderFlags(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && (a == "--config" || a == "-config" || a == "--wait" || a == "-wait") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, a)
	}
	return append(flags, rest...)
}

func printTimeline(w io.Writer, rec *timing.Record) {
	mode := "non-streaming"
	if rec.Stream {
		mode = "streaming"
	}
	fmt.Fprintf(w, "request %s  %s  %s  model %s  status %d", rec.ID, rec.Received.Format(time.RFC3339Nano), rec.Endpoint, rec.Model, rec.Status)
	if rec.Route != "" {
		fmt.Fprintf(w, "  answered by %s", rec.Route)
	}
	fmt.Fprintf(w, "  (%s)\n", mode)
	if rec.TraceID != "" {
		fmt.Fprintf(w, "trace %s, span %s\n", rec.TraceID, rec.SpanID)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "verdict: %s\n  %s\n", strings.ToUpper(rec.Verdict.Kind), rec.Verdict.Reason)
	if len(rec.Verdict.Numbers) > 0 {
		names := make([]string, 0, len(rec.Verdict.Numbers))
		for n := range rec.Verdict.Numbers {
			names = append(names, n)
		}
		sort.Strings(names)
		var parts []string
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("%s=%.1f", n, rec.Verdict.Numbers[n]))
		}
		fmt.Fprintf(w, "  %s\n", strings.Join(parts, "  "))
	}
	p := rec.Phases
	fmt.Fprintf(w, "\nphases (ms): auth %.3f + route %.3f + upstream %.3f + client %.3f + gateway %.3f = total %.3f\n",
		p.Auth, p.Route, p.Upstream, p.Client, p.Gateway, p.Total)
	fmt.Fprintf(w, "\ntimeline (ms from arrival):\n")
	line := func(at timing.Ms, what string) { fmt.Fprintf(w, "  %10.3f  %s\n", float64(at), what) }
	line(0, "received")
	if p.Auth > 0 {
		line(p.Auth, "authenticated")
	}
	for _, a := range rec.Attempts {
		conn := "new connection"
		if a.Reused {
			conn = "reused connection"
		}
		if !a.Wire {
			conn = "in-process"
		}
		line(a.StartAt, fmt.Sprintf("attempt %d on %s started (%s, %d in flight)", a.Number, a.Target, conn, a.InFlight))
		if a.Wire && !a.Reused {
			fmt.Fprintf(w, "  %10s  dns %.3f  connect %.3f  tls %.3f\n", "", a.DNS, a.Connect, a.TLS)
		}
		if a.WrittenAt > 0 {
			line(a.WrittenAt, "request written")
		}
		if a.FirstByteAt > 0 {
			extra := fmt.Sprintf("network %.3f", a.Network)
			if a.Processing > 0 {
				extra += fmt.Sprintf(", upstream says it worked %.0f", a.Processing)
			}
			line(a.FirstByteAt, "first byte ("+extra+")")
		}
		if a.FirstTokenAt > 0 {
			line(a.FirstTokenAt, fmt.Sprintf("first token (time to first token %.3f, %d prompt tokens)", a.TTFT, a.PromptTokens))
		}
		if a.LastTokenAt > 0 && a.LastTokenAt != a.FirstTokenAt {
			line(a.LastTokenAt, fmt.Sprintf("last token (%d output tokens in %d chunks, %.1f tokens/s)", a.OutputTokens, a.Chunks, a.TokensPerSecond))
		}
		end := "ended"
		if a.Error != "" {
			end = "failed: " + a.Error
		}
		line(a.EndAt, fmt.Sprintf("attempt %d %s", a.Number, end))
	}
	line(p.Total, "response finished")
}
