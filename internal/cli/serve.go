package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/secrets"
	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/verdict"
)

// MasterKeyEnv names the environment variable holding the master key.
const MasterKeyEnv = "TIDEGATE_MASTER_KEY"

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML); none runs the sim demo")
	listen := fs.String("listen", "", "address to listen on, overrides the config's listen")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler on this address (keep it on loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	started := time.Now()
	demo := *configPath == ""
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	logger := newLogger(stderr, cfg.LogLevel)

	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	masterKey, generated, err := resolveMasterKey(ctx, cfg, st)
	if err != nil {
		return err
	}
	var sealer *secrets.Sealer
	if secret := os.Getenv(SecretKeyEnv); secret != "" {
		if sealer, err = secrets.NewSealer(secret); err != nil {
			return fmt.Errorf("%s: %w", SecretKeyEnv, err)
		}
	}
	catalog, err := newCatalog(cfg)
	if err != nil {
		return err
	}
	creds := newCredentials(cfg.Providers, st, sealer, logger)
	if cfg.Providers, err = creds.load(ctx); err != nil {
		return err
	}
	providers, err := fleet.Build(cfg.Providers)
	if err != nil {
		return err
	}
	types := make(map[string]string, len(cfg.Providers))
	for _, p := range cfg.Providers {
		types[p.Name] = p.Type
	}
	var holds ledger.Budgeter = ledger.DBHolds{Store: st}
	if st.Dialect() == store.SQLite {
		holds = &ledger.LocalHolds{Store: st} // SQLite: one process owns the budgets
	}
	meter := &ledger.Meter{Store: st, Holds: holds, Catalog: catalog, Limiter: ledger.NewLimiter(nil), Logger: logger,
		ProviderTypes: types, ReservationTTL: cfg.Budgets.ReservationTTL, USDToCNY: cfg.Budgets.USDToCNY}
	if u := cfg.Budgets.Unpriced; u != nil {
		meter.Unpriced = &ledger.Fallback{Currency: u.Currency, Input: u.Input, Output: u.Output, Image: u.Image}
	}
	reconcileCtx, stopReconcile := context.WithCancel(context.Background())
	defer stopReconcile()
	go meter.Reconcile(reconcileCtx, min(cfg.Budgets.ReservationTTL/4, time.Minute))
	rt := newRouter(cfg)
	credIDs := map[string][]string{}
	for _, p := range cfg.Providers {
		if ids := fleet.CredentialIDs(p); len(ids) > 0 {
			credIDs[p.Name] = ids
		}
	}
	rt.SetCredentials(credIDs)
	gw := &gateway.Gateway{
		Router:    rt,
		Providers: providers,
		Logger:    logger,
		Meter:     meter,
		OutputCap: cfg.Budgets.OutputCap,
		Created:   started,
		Health: router.NewHealth(router.HealthConfig{ConsecutiveFailures: cfg.Reliability.ConsecutiveFailures,
			BaseEjection: cfg.Reliability.BaseEjection, MaxEjection: cfg.Reliability.MaxEjection}, nil, nil),
		Retries:           &gateway.RetryBudget{Ratio: cfg.Reliability.RetryRatio, Burst: cfg.Reliability.RetryBurst},
		FirstTokenTimeout: cfg.Reliability.FirstTokenTimeout,
		IdleTimeout:       cfg.Reliability.IdleTimeout,
	}
	gw.Health.OnChange = func(t router.Target, state, reason string, until time.Time) {
		logger.Warn("target health changed", "target", t.String(), "credential", t.Credential, "state", state, "reason", reason, "until", until)
	}
	api := &httpapi.Server{
		Gateway:         gw,
		Logger:          logger,
		MasterKey:       masterKey,
		BodyLimit:       cfg.Server.BodyLimit,
		BodyReadTimeout: cfg.Server.BodyReadTimeout,
		WriteTimeout:    cfg.Server.WriteTimeout,
		Store:           st,
		Sealer:          sealer,
		RequestTimeout:  cfg.Reliability.RequestTimeout,
		Judge:           verdict.New(),
	}
	creds.gw, creds.rt = gw, rt
	api.CredentialsChanged = creds.Reload
	if slices.ContainsFunc(cfg.Providers, func(p config.Provider) bool { return p.StoredCredentials }) {
		reloadCtx, stopReload := context.WithCancel(context.Background())
		defer stopReload()
		go creds.Run(reloadCtx, 30*time.Second)
	}
	stopObservers, err := observe(cfg, api, gw, meter, st, creds, masterKey, logger)
	if err != nil {
		return err
	}
	defer stopObservers()
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout or WriteTimeout: they would cut long streams. The
		// handlers set a deadline for the body read and for every write.
		ErrorLog: nil,
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if cfg.Server.SendBuffer > 0 {
		ln = sendBufferListener{ln, cfg.Server.SendBuffer}
	}
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "tidegate %s listening on http://%s (ready in %s)\n", Version, addr, time.Since(started).Round(time.Millisecond))
	if demo {
		fmt.Fprintf(stdout, "demo mode: the simulated fleet, state in %s\n", config.DataDir)
	}
	if generated != "" {
		fmt.Fprintf(stdout, "master key (%s): %s\n", generated, masterKey)
		fmt.Fprintf(stdout, "try:\n  curl -s http://%s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n", addr, masterKey)
	}
	logger.Info("listening", "addr", addr, "providers", len(cfg.Providers), "models", len(cfg.Models))

	if *pprofAddr != "" {
		stopProfiler, err := serveProfiler(*pprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopProfiler()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Graceful drain: stop accepting, let running requests and streams
	// finish within the grace period, then cut what is left.
	logger.Info("shutting down", "grace", cfg.Server.ShutdownGrace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil {
		logger.Warn("grace period over, closing remaining connections")
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// resolveMasterKey takes the key from the environment or the config, else
// generates one once and keeps it in the store. The second result says where
// a key that should be printed came from ("" when it came from the operator).
func resolveMasterKey(ctx context.Context, cfg *config.Config, st *store.DB) (string, string, error) {
	if k := os.Getenv(MasterKeyEnv); k != "" {
		return k, "", nil
	}
	if cfg.MasterKey != "" {
		return cfg.MasterKey, "", nil
	}
	path, ok := strings.CutPrefix(cfg.Store, "sqlite:")
	if !ok {
		// A generated key would sit in a database other replicas share:
		// with PostgreSQL the operator sets it.
		return "", "", fmt.Errorf("master_key: set master_key or %s (a key is generated only with the SQLite store)", MasterKeyEnv)
	}
	key, created, err := st.SettingOnce(ctx, "master_key", newMasterKey)
	if err != nil {
		return "", "", err
	}
	if created {
		return key, "generated now, kept in " + path, nil
	}
	return key, "kept in " + path, nil
}

func newMasterKey() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "tg-master-" + base64.RawURLEncoding.EncodeToString(b[:])
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

// sendBufferListener caps each connection's kernel send buffer: memory per
// stream stays bounded, and a slow reader pushes back on the stream (and,
// through it, on the upstream) at once rather than after megabytes.
type sendBufferListener struct {
	net.Listener
	bytes int
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.bytes)
	}
	return c, err
}
