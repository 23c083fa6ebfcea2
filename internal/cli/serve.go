package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML); none runs the sim demo")
	listen := fs.String("listen", "", "address to listen on, overrides the config's listen")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler on this address (keep it on loopback)")
	noMigrate := fs.Bool("no-migrate", false, "do not migrate the store (`tidegate migrate` ran apart); refuse to start on an older schema")
	addrFile := fs.String("addr-file", "", "once listening, write the address (host:port) to this file (for supervisors and scripts)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	demo := *configPath == ""
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	logger := newLogger(stderr, cfg.LogLevel)
	a, err := app.New(ctx, cfg, app.Options{Logger: logger, Version: Version, SkipMigrate: *noMigrate})
	if err != nil {
		return err
	}
	defer a.Close()
	ls, err := a.Listen()
	if err != nil {
		return err
	}
	addr := ls.API.Addr().String()
	if err := app.RecordAddress(ctx, a.Store, addr); err != nil {
		logger.Warn("listen address not recorded for tidegate status", "error", err)
	}
	fmt.Fprintf(stdout, "tidegate %s listening on http://%s (ready in %s)\n", Version, addr, time.Since(a.Started).Round(time.Millisecond))
	if ls.Admin != nil {
		fmt.Fprintf(stdout, "admin API and metrics on http://%s only\n", ls.Admin.Addr())
	}
	if demo {
		fmt.Fprintf(stdout, "demo mode: the simulated fleet, state in %s\n", config.DataDir)
	}
	printMasterKey(stdout, a.Master, addr, tryModel(cfg))
	logger.Info("listening", "addr", addr, "providers", len(cfg.Providers), "models", len(cfg.Models))
	if *addrFile != "" {
		// Written whole, then renamed: a reader never sees half an address.
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			return err
		}
	}
	if *pprofAddr != "" {
		stopProfiler, err := serveProfiler(*pprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopProfiler()
	}
	return a.Serve(ctx, ls)
}

// printMasterKey says what the operator needs about the master key: a key
// known in full is printed (it was generated or migrated just now), with a
// ready curl line; a key kept only as its hash is never shown.
func printMasterKey(w io.Writer, mk app.MasterKey, addr, model string) {
	switch {
	case mk.Note == "":
		return // the operator's own key
	case mk.Key == "":
		fmt.Fprintf(w, "master key: %s\n", mk.Note)
	default:
		fmt.Fprintf(w, "master key (%s): %s\n", mk.Note, mk.Key)
		fmt.Fprintf(w, "try:\n  curl -s http://%s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":%q,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n", addr, mk.Key, model)
	}
}

// tryModel is a model the config serves, for the ready-made curl line: its
// first public name, else its first provider's first listed model.
func tryModel(cfg *config.Config) string {
	if len(cfg.Models) > 0 {
		return cfg.Models[0].Name
	}
	for _, p := range cfg.Providers {
		if len(p.Models) > 0 {
			return p.Name + "/" + p.Models[0]
		}
	}
	if len(cfg.Providers) > 0 {
		return cfg.Providers[0].Name + "/MODEL" // it serves any name: the user picks one
	}
	return "chat"
}

// serveProfiler exposes net/http/pprof on its own listener, never on the API's.
func serveProfiler(addr string, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	logger.Info("profiler listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
