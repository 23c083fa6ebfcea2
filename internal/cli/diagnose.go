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
	if rec.RouteReason != "" {
		fmt.Fprintf(w, "route reason: %s\n", rec.RouteReason)
	}
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
	for _, e := range timeline(rec) {
		fmt.Fprintf(w, "  %10.3f  %s\n", float64(e.at), e.what)
	}
}

// event is one line of a timeline.
type event struct {
	at   timing.Ms
	what string
}

// timeline lists a record's events in time order: hedged attempts overlap,
// so one attempt's events are interleaved with another's.
func timeline(rec *timing.Record) []event {
	p := rec.Phases
	events := []event{{0, "received"}}
	add := func(at timing.Ms, what string) { events = append(events, event{at, what}) }
	if p.Auth > 0 {
		add(p.Auth, "authenticated")
	}
	for _, a := range rec.Attempts {
		conn := "reused connection"
		switch {
		case !a.Wire:
			conn = "in-process"
		case !a.Reused:
			conn = fmt.Sprintf("new connection: dns %.3f, connect %.3f, tls %.3f", a.DNS, a.Connect, a.TLS)
		}
		add(a.StartAt, fmt.Sprintf("attempt %d on %s started (%s; %d in flight)", a.Number, a.Target, conn, a.InFlight))
		if a.WrittenAt > 0 {
			add(a.WrittenAt, fmt.Sprintf("attempt %d: request written", a.Number))
		}
		if a.FirstByteAt > 0 {
			add(a.FirstByteAt, fmt.Sprintf("attempt %d: first byte (%s)", a.Number, headWait(a)))
		}
		if a.FirstTokenAt > 0 {
			add(a.FirstTokenAt, fmt.Sprintf("attempt %d: first token (time to first token %.3f, %d prompt tokens)", a.Number, a.TTFT, a.PromptTokens))
		}
		if a.LastTokenAt > 0 && a.LastTokenAt != a.FirstTokenAt {
			add(a.LastTokenAt, fmt.Sprintf("attempt %d: last token (%d output tokens in %d chunks, %.1f tokens/s)", a.Number, a.OutputTokens, a.Chunks, a.TokensPerSecond))
		}
		if a.EndAt > 0 { // zero: still open when the response finished
			end := "ended"
			if a.Error != "" {
				end = "failed: " + a.Error
			}
			add(a.EndAt, fmt.Sprintf("attempt %d %s", a.Number, end))
		}
	}
	add(p.Total, "response finished")
	sort.SliceStable(events, func(i, j int) bool { return events[i].at < events[j].at })
	return events
}

// headWait explains an attempt's wait for its head: the network's round
// trip, the evidence for it, and the upstream's time.
func headWait(a timing.AttemptRecord) string {
	up := a.HeadWait - a.RoundTrip
	switch a.RoundTripFrom {
	case timing.RoundTripProcessing:
		return fmt.Sprintf("head after %.3f: the upstream says it worked %.3f, the round trip %.3f", a.HeadWait, a.Processing, a.RoundTrip)
	case timing.RoundTripConnect:
		return fmt.Sprintf("head after %.3f: a round trip %.3f (as long as its connect), the upstream %.3f", a.HeadWait, a.RoundTrip, up)
	case timing.RoundTripBaseline:
		return fmt.Sprintf("head after %.3f: the target's usual round trip %.3f, the upstream %.3f", a.HeadWait, a.RoundTrip, up)
	}
	return fmt.Sprintf("head after %.3f: no round trip known, all the upstream's", a.HeadWait)
}
