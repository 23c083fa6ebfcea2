package bench

import (
	"fmt"
	"io"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

// Added is the gateway's added latency at a percentile: via minus direct.
func Added(direct, via *Phase, q float64) time.Duration { return via.Pct(q) - direct.Pct(q) }

// Print writes the report as Markdown, the form docs/benchmarks.md keeps.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "open loop at %d requests/s, %s per phase; load tool and upstream share the cores with the gateway\n", r.Rate, r.Duration)
	fmt.Fprintf(w, "through tidegate with %s; %s\n\n", r.Auth, r.Observe)
	fmt.Fprintln(w, "| phase | sent | errors | p50 | p90 | p99 | max | gateway CPU per request |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, p := range []*Phase{&r.Direct, &r.Gateway, &r.DirectSSE, &r.GatewaySSE} {
		cpu := "—"
		if p == &r.Gateway || p == &r.GatewaySSE {
			if ok := len(p.Latencies); ok > 0 {
				cpu = fmt.Sprintf("%.0f µs", float64(p.CPU.Microseconds())/float64(ok))
			}
		}
		max := time.Duration(0)
		if n := len(p.Latencies); n > 0 {
			max = p.Latencies[n-1]
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s |\n", p.Name, p.Sent, p.Errors, ms(p.Pct(0.5)), ms(p.Pct(0.9)), ms(p.Pct(0.99)), ms(max), cpu)
	}
	for _, p := range []*Phase{&r.Direct, &r.Gateway, &r.DirectSSE, &r.GatewaySSE} {
		if l := whyLine(p.Name, p.Why); l != "" {
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| added by tidegate | p50 | p99 | target |")
	fmt.Fprintln(w, "|---|---|---|---|")
	fmt.Fprintf(w, "| non-streaming | %s | %s | ≤ 0.3 ms / ≤ 1 ms |\n", ms(Added(&r.Direct, &r.Gateway, 0.5)), ms(Added(&r.Direct, &r.Gateway, 0.99)))
	fmt.Fprintf(w, "| streaming, to the body's end | %s | %s | |\n", ms(Added(&r.DirectSSE, &r.GatewaySSE, 0.5)), ms(Added(&r.DirectSSE, &r.GatewaySSE, 0.99)))
	fmt.Fprintf(w, "| streaming, to [DONE] | %s | %s | ≤ 0.3 ms / ≤ 1 ms |\n",
		ms(pct(r.GatewaySSE.Done, 0.5)-pct(r.DirectSSE.Done, 0.5)), ms(pct(r.GatewaySSE.Done, 0.99)-pct(r.DirectSSE.Done, 0.99)))
	fmt.Fprintf(w, "| streaming, first byte | %s | %s | |\n",
		ms(pct(r.GatewaySSE.TTFB, 0.5)-pct(r.DirectSSE.TTFB, 0.5)), ms(pct(r.GatewaySSE.TTFB, 0.99)-pct(r.DirectSSE.TTFB, 0.99)))
	if r.Direct.Pct(0.5) > 0 {
		fmt.Fprintf(w, "\nratio via/direct at p50: non-streaming %.2f×, streaming %.2f×\n",
			float64(r.Gateway.Pct(0.5))/float64(r.Direct.Pct(0.5)), float64(r.GatewaySSE.Pct(0.5))/float64(r.DirectSSE.Pct(0.5)))
	}
	fmt.Fprintf(w, "\nstart-up to serving: %s (target ≤ 500 ms)\n", ms(r.Startup))
	fmt.Fprintf(w, "gateway RSS idle after the load: %.1f MB\n", float64(r.RSSIdle)/1e6)
	if r.Streams > 0 {
		fmt.Fprintf(w, "gateway RSS with %d of %d streams open: %.1f MB (target ≤ 100 MB)\n", r.StreamsOK, r.Streams, float64(r.RSSStreams)/1e6)
	}
}
