package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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
	ttft := fs.Duration("ttft", -1, "override every model's time to first token")
	tps := fs.Float64("tps", -1, "override every model's tokens per second (0: unpaced)")
	tokens := fs.Int("tokens", 0, "override every model's output length")
	capacity := fs.Int("capacity", 0, "sequences each model runs at once, the rest queued (0: unbounded); load at GET /metrics in vLLM's names")
	if err := fs.Parse(args); err != nil {
		return err
	}
	models := sim.DefaultFleet()
	for i := range models {
		if *ttft >= 0 {
			models[i].TTFT = *ttft
		}
		if *tps >= 0 {
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
	srv := &http.Server{Handler: f.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "sim fleet listening on http://%s/v1\n", ln.Addr())
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
