package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// simServe serves the sim fleet over HTTP as an OpenAI-compatible upstream:
// the far end of benchmarks and chaos drills.
func simServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9090", "address to listen on")
	seed := fs.Uint64("seed", 1, "seed of the fleet's answers")
	// -ttft and -tps override only when given: unset, each model keeps its
	// own (help shows that, not a sentinel such as -1).
	var ttft *time.Duration
	var tps *float64
	fs.Func("ttft", "override every model's time to first token, a `duration` such as 200ms (default: each model's own)", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("want a duration ≥ 0, such as 200ms")
		}
		ttft = &d
		return nil
	})
	fs.Func("tps", "override every model's `tokens/s`, 0: unpaced (default: each model's own)", func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("want a number ≥ 0")
		}
		tps = &f
		return nil
	})
	tokens := fs.Int("tokens", 0, "override every model's output length (0: each model's own)")
	capacity := fs.Int("capacity", 0, "sequences each model runs at once, the rest queued (0: unbounded); load at GET /metrics in vLLM's names")
	if err := fs.Parse(args); err != nil {
		return err
	}
	models := sim.DefaultFleet()
	for i := range models {
		if ttft != nil {
			models[i].TTFT = *ttft
		}
		if tps != nil {
			models[i].TokensPerSecond = *tps
		}
		if *tokens > 0 {
			models[i].OutputTokens = *tokens
		}
		if *capacity > 0 {
			models[i].Capacity = *capacity
		}
	}
	f := sim.New("sim", *seed, models)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sim fleet listening on http://%s/v1\n", ln.Addr())
	return serveUntilDone(ctx, ln, f.Handler())
}

// serveUntilDone serves h on ln until ctx ends, then shuts down (5 s grace).
func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
