// Package app is tidegate's composition root: it turns a config into a
// running gateway — store, meter, router, gateway, HTTP API, observers —
// and serves it. The CLI, the benchmarks, the drill and the tests all build
// tidegate here, so there is one way to wire it.
package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/tidegate/tidegate/internal/store/postgres"
	"github.com/tidegate/tidegate/internal/store/sqlite"
	"github.com/tidegate/tidegate/internal/verdict"
)

// Environment variables tidegate reads.
const (
	// MasterKeyEnv holds the master key.
	MasterKeyEnv = "TIDEGATE_MASTER_KEY"
	// SecretKeyEnv holds the key that encrypts provider credentials at rest.
	SecretKeyEnv = "TIDEGATE_SECRET_KEY"
)

// Options tune what New builds beyond the config.
type Options struct {
	Logger  *slog.Logger // nil: discard
	Version string       // reported by traces
	// Getenv reads the environment; nil: os.Getenv.
	Getenv func(string) string
}

// App is tidegate built from a config, ready to serve.
type App struct {
	Config  *config.Config
	Logger  *slog.Logger
	Store   *store.DB
	Gateway *gateway.Gateway
	API     *httpapi.Server
	// MasterKey authorises everything; KeyOrigin says where a generated
	// one is kept ("" when the operator set it).
	MasterKey, KeyOrigin string
	// Started is when New began, for the "ready in" line.
	Started time.Time

	closers []func() // run in reverse by Close
}

// New builds tidegate from cfg. Close releases what it opened.
func New(ctx context.Context, cfg *config.Config, opts Options) (_ *App, err error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &App{Config: cfg, Logger: logger, Started: time.Now()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.Store, err = OpenStore(ctx, cfg.Store); err != nil {
		return nil, err
	}
	a.onClose(func() { a.Store.Close() })
	if a.MasterKey, a.KeyOrigin, err = ResolveMasterKey(ctx, cfg, a.Store, getenv); err != nil {
		return nil, err
	}
	var sealer *secrets.Sealer
	if secret := getenv(SecretKeyEnv); secret != "" {
		if sealer, err = secrets.NewSealer(secret); err != nil {
			return nil, fmt.Errorf("%s: %w", SecretKeyEnv, err)
		}
	}
	catalog, err := Catalog(cfg)
	if err != nil {
		return nil, err
	}
	creds := newCredentials(cfg.Providers, a.Store, sealer, logger)
	if cfg.Providers, err = creds.load(ctx); err != nil {
		return nil, err
	}
	providers, err := fleet.Build(cfg.Providers)
	if err != nil {
		return nil, err
	}
	meter := a.newMeter(catalog)
	rt := newRouter(cfg)
	rt.SetCredentials(credentialIDs(cfg.Providers))
	gw := &gateway.Gateway{
		Router:    rt,
		Providers: providers,
		Logger:    logger,
		Meter:     meter,
		OutputCap: cfg.Budgets.OutputCap,
		Created:   a.Started,
		Health: router.NewHealth(router.HealthConfig{ConsecutiveFailures: cfg.Reliability.ConsecutiveFailures,
			BaseEjection: cfg.Reliability.BaseEjection, MaxEjection: cfg.Reliability.MaxEjection}, nil, nil),
		Retries:           &gateway.RetryBudget{Ratio: cfg.Reliability.RetryRatio, Burst: cfg.Reliability.RetryBurst},
		FirstTokenTimeout: cfg.Reliability.FirstTokenTimeout,
		IdleTimeout:       cfg.Reliability.IdleTimeout,
	}
	gw.Health.OnChange = func(t router.Target, state, reason string, until time.Time) {
		logger.Warn("target health changed", "target", t.String(), "credential", t.Credential, "state", state, "reason", reason, "until", until)
	}
	a.Gateway = gw
	a.API = &httpapi.Server{
		Gateway:         gw,
		Logger:          logger,
		MasterKey:       a.MasterKey,
		BodyLimit:       cfg.Server.BodyLimit,
		BodyReadTimeout: cfg.Server.BodyReadTimeout,
		WriteTimeout:    cfg.Server.WriteTimeout,
		Store:           a.Store,
		Sealer:          sealer,
		RequestTimeout:  cfg.Reliability.RequestTimeout,
		Judge:           verdict.New(),
	}
	creds.gw, creds.rt = gw, rt
	a.API.CredentialsChanged = creds.Reload
	if slices.ContainsFunc(cfg.Providers, func(p config.Provider) bool { return p.StoredCredentials }) {
		a.background(func(ctx context.Context) { creds.Run(ctx, 30*time.Second) })
	}
	stopObservers, err := observe(cfg, a.API, gw, meter, a.Store, creds, a.MasterKey, opts.Version, logger)
	if err != nil {
		return nil, err
	}
	a.onClose(stopObservers)
	return a, nil
}

// newMeter builds the meter (limits, budget holds, billing) and starts its
// reconciler of orphaned holds.
func (a *App) newMeter(catalog *ledger.Catalog) *ledger.Meter {
	cfg := a.Config
	types := make(map[string]string, len(cfg.Providers))
	for _, p := range cfg.Providers {
		types[p.Name] = p.Type
	}
	var holds ledger.Budgeter = ledger.DBHolds{Store: a.Store}
	if a.Store.Dialect() == store.SQLite {
		holds = &ledger.LocalHolds{Store: a.Store} // SQLite: one process owns the budgets
	}
	meter := &ledger.Meter{Store: a.Store, Holds: holds, Catalog: catalog, Limiter: ledger.NewLimiter(nil), Logger: a.Logger,
		ProviderTypes: types, ReservationTTL: cfg.Budgets.ReservationTTL, USDToCNY: cfg.Budgets.USDToCNY}
	a.background(func(ctx context.Context) { meter.Reconcile(ctx, min(cfg.Budgets.ReservationTTL/4, time.Minute)) })
	return meter
}

func credentialIDs(ps []config.Provider) map[string][]string {
	ids := map[string][]string{}
	for _, p := range ps {
		if c := fleet.CredentialIDs(p); len(c) > 0 {
			ids[p.Name] = c
		}
	}
	return ids
}

// background runs fn until Close.
func (a *App) background(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	a.onClose(func() { cancel(); <-done })
}

func (a *App) onClose(fn func()) { a.closers = append(a.closers, fn) }

// Close stops what New started, newest first. Call it after Serve returned.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// Listen opens the configured listener.
func (a *App) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.Config.Listen)
	if err != nil {
		return nil, err
	}
	if n := a.Config.Server.SendBuffer; n > 0 {
		ln = sendBufferListener{ln, n}
	}
	return ln, nil
}

// Serve serves the API on ln until ctx ends, then drains: it stops
// accepting, lets running requests and streams finish within the grace
// period, and cuts what is left.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	cfg := a.Config
	srv := &http.Server{
		Handler:           a.API.Handler(),
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout or WriteTimeout: they would cut long streams. The
		// handlers set a deadline for the body read and for every write.
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.Logger.Info("shutting down", "grace", cfg.Server.ShutdownGrace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil {
		a.Logger.Warn("grace period over, closing remaining connections")
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Running is an App serving in the background (tests, bench, drill).
type Running struct {
	*App
	URL  string // http://host:port
	stop func() error
}

// Start builds tidegate from cfg and serves it on cfg.Listen in the
// background; Stop drains and closes it.
func Start(ctx context.Context, cfg *config.Config, opts Options) (*Running, error) {
	a, err := New(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	ln, err := a.Listen()
	if err != nil {
		a.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(sctx, ln) }()
	stop := func() error {
		cancel()
		err := <-served
		a.Close()
		return err
	}
	return &Running{App: a, URL: "http://" + ln.Addr().String(), stop: stop}, nil
}

// Stop drains the server and closes the app, returning what Serve
// returned; call it once.
func (r *Running) Stop() error { return r.stop() }

// OpenStore opens a store: sqlite:PATH or postgres://….
func OpenStore(ctx context.Context, dsn string) (*store.DB, error) {
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		return sqlite.Open(ctx, path)
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgres.Open(ctx, dsn)
	}
	return nil, fmt.Errorf("store: want sqlite:PATH or postgres://…, got %q", dsn)
}

// Catalog builds the price catalog with the config's overrides.
func Catalog(cfg *config.Config) (*ledger.Catalog, error) {
	var overrides []ledger.Price
	for _, p := range cfg.Prices {
		name, model, _ := strings.Cut(p.Model, "/")
		var eff time.Time
		if p.Effective != "" {
			eff, _ = time.Parse("2006-01-02", p.Effective)
		}
		overrides = append(overrides, ledger.Price{Provider: name, Model: model, Currency: p.Currency, Effective: eff,
			Input: p.Input, Output: p.Output, CachedInput: p.CachedInput, CacheWrite: p.CacheWrite, Source: "config override"})
	}
	return ledger.NewCatalog(overrides)
}

// ResolveMasterKey takes the key from the environment or the config, else
// generates one once and keeps it in the store. The second result says where
// a key that should be printed came from ("" when it came from the operator).
func ResolveMasterKey(ctx context.Context, cfg *config.Config, st *store.DB, getenv func(string) string) (string, string, error) {
	if k := getenv(MasterKeyEnv); k != "" {
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
