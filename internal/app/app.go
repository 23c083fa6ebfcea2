// Package app is tidegate's composition root: it turns a config into a
// running gateway — store, meter, router, gateway, HTTP API, observers —
// and serves it. The CLI, the benchmarks, the drill and the tests all build
// tidegate here, so there is one way to wire it.
package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/batch"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/evalrun"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/load"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/secrets"
	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/postgres"
	"github.com/tidegate/tidegate/internal/store/sqlite"
	"github.com/tidegate/tidegate/internal/tide"
	"github.com/tidegate/tidegate/internal/verdict"
)

// Environment variables tidegate reads.
const (
	// MasterKeyEnv holds the master key.
	MasterKeyEnv = "TIDEGATE_MASTER_KEY"
	// SecretKeyEnv holds the key that encrypts provider credentials at rest.
	SecretKeyEnv = "TIDEGATE_SECRET_KEY"
)

// abilityRefresh is how often ability routes reread results and prices:
// a new eval run or price moves their choices within it.
const abilityRefresh = 20 * time.Second

// Options tune what New builds beyond the config.
type Options struct {
	Logger  *slog.Logger // nil: discard
	Version string       // reported by traces
	// Getenv reads the environment; nil: os.Getenv.
	Getenv func(string) string
	// PriceRefresh and AbilityRefresh override how often stored prices and
	// ability routes are reread (tests); 0: priceRefresh, abilityRefresh.
	PriceRefresh, AbilityRefresh time.Duration
	// PoolSample overrides how often the console's pool chart samples the
	// load (tests); 0: every 10 s.
	PoolSample time.Duration
	// SkipMigrate opens the store without migrating it (`tidegate migrate`
	// ran apart); start-up fails if the schema is behind.
	SkipMigrate bool
}

// App is tidegate built from a config, ready to serve.
type App struct {
	Config  *config.Config
	Logger  *slog.Logger
	Store   *store.DB
	Gateway *gateway.Gateway
	API     *httpapi.Server
	// Evals runs eval suites; Serve resumes the API-started runs.
	Evals *evalrun.Runner
	// Master authorises everything.
	Master MasterKey
	// Abilities are the ability routes by public name.
	Abilities map[string]*ability.Route
	// Loads is the self-hosted targets' live load (internal/load).
	Loads *load.Tracker
	// Started is when New began, for the "ready in" line.
	Started time.Time
	// Batches runs the Batch API's batches; nil when batches are disabled.
	// Its Gate admits items to routes (default: a concurrency bound).
	Batches *batch.Executor
	// Tide is the batch executor's gate, the tidal dispatcher; nil when
	// batches are disabled.
	Tide *tide.Gate

	skipMigrate bool     // Options.SkipMigrate: River's tables are checked, not migrated
	closers     []func() // run in reverse by Close
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
	a := &App{Config: cfg, Logger: logger, Started: time.Now(), skipMigrate: opts.SkipMigrate}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.Store, err = OpenStoreWith(ctx, cfg.Store, StoreOptions(cfg, opts.SkipMigrate)); err != nil {
		return nil, err
	}
	a.onClose(func() { a.Store.Close() })
	if a.Master, err = ResolveMasterKey(ctx, cfg, a.Store, getenv); err != nil {
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
	providers, err := build(cfg.Providers)
	if err != nil {
		return nil, err
	}
	meter, err := a.newMeter(ctx, catalog)
	if err != nil {
		return nil, err
	}
	note, err := a.newNotifier()
	if err != nil {
		return nil, err
	}
	loads := newLoadTracker(cfg, providers, a)
	a.Loads = loads
	a.background(loads.Run)
	ab := &abilityDeps{results: a.Store, catalog: catalog, logger: logger, abilities: map[string]*ability.Route{}, loads: loads}
	rt := newRouter(cfg, ab)
	a.Abilities = ab.abilities
	prices := newPriceBook(a.Store, catalog, cfg.Providers, ab.abilities, logger, note)
	if err := prices.reload(ctx); err != nil {
		return nil, err
	}
	a.background(func(ctx context.Context) { prices.run(ctx, cmp.Or(opts.PriceRefresh, priceRefresh)) })
	for _, r := range ab.abilities {
		a.background(func(ctx context.Context) { r.Run(ctx, cmp.Or(opts.AbilityRefresh, abilityRefresh)) })
	}
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
		Load:              loadObserver{loads},
	}
	gw.Health.OnChange = func(t router.Target, state, reason string, until time.Time) {
		logger.Warn("target health changed", "target", t.String(), "credential", t.Credential, "state", state, "reason", reason, "until", until)
	}
	if gw.Verifiers, err = verifiers(cfg, gw); err != nil {
		return nil, err
	}
	a.Gateway = gw
	a.API = &httpapi.Server{
		Gateway:          gw,
		Logger:           logger,
		MasterKey:        a.Master.Key, // "" when only its hash is kept
		MasterKeyHash:    a.Master.Hash[:],
		BodyMemory:       cfg.Server.BodyMemory,
		AuthFailureLimit: cfg.Server.AuthFailureLimit,
		AdminSeparate:    cfg.Admin.Listen != "",
		BodyLimit:        cfg.Server.BodyLimit,
		BodyReadTimeout:  cfg.Server.BodyReadTimeout,
		WriteTimeout:     cfg.Server.WriteTimeout,
		Store:            a.Store,
		Sealer:           sealer,
		RequestTimeout:   cfg.Reliability.RequestTimeout,
		Judge:            verdict.New(),
		Ready:            &httpapi.Readiness{Store: a.Store},
	}
	gw.Shadows = shadows(cfg, a.Abilities)
	a.API.Feedback = observeFeedback(a.Abilities, logger)
	a.Evals = &evalrun.Runner{Store: a.Store, Gateway: gw, Logger: logger, Judge: cfg.Evals.Judge,
		Finished: func(ctx context.Context, _ string) { note.Notify(ctx, topicEvals) }}
	a.background(func(ctx context.Context) { refreshOnEvals(ctx, note.Subscribe(topicEvals), a.Abilities, logger) })
	a.API.EvalRuns = a.Evals
	a.API.Prices = prices
	creds.gw, creds.rt = gw, rt
	a.API.CredentialsChanged = func(ctx context.Context) error {
		if err := creds.Reload(ctx); err != nil {
			return err
		}
		note.Notify(ctx, topicCredentials)
		return nil
	}
	credsChanged := note.Subscribe(topicCredentials)
	a.API.StoredCredentialProviders = StoredCredentialProviders(cfg.Providers)
	if slices.ContainsFunc(cfg.Providers, func(p config.Provider) bool { return p.StoredCredentials }) {
		a.background(func(ctx context.Context) { creds.Run(ctx, 30*time.Second, credsChanged) })
	}
	if err := a.startBatches(ctx, gw, catalog); err != nil {
		return nil, err
	}
	stopObservers, err := observe(cfg, a.API, gw, meter, a.Store, creds, liveQuality(a.Abilities), loads, a.tideReports(), a.Master.Key, opts.Version, logger)
	if err != nil {
		return nil, err
	}
	a.onClose(stopObservers)
	a.API.Ready.ConfigLoaded.Store(true)
	if err := a.wireConsole(opts.PoolSample); err != nil {
		return nil, err
	}
	return a, nil
}

// newMeter builds the meter (limits, budget holds, billing), opens its bill
// outbox (settling what a previous process left) and starts its reconciler
// of orphaned holds.
func (a *App) newMeter(ctx context.Context, catalog *ledger.Catalog) (*ledger.Meter, error) {
	cfg := a.Config
	types := make(map[string]string, len(cfg.Providers))
	for _, p := range cfg.Providers {
		types[p.Name] = p.Type
	}
	var holds ledger.Budgeter = ledger.DBHolds{Store: a.Store}
	if a.Store.Dialect() == store.SQLite {
		holds = &ledger.LocalHolds{Store: a.Store} // SQLite: one process owns the budgets
	}
	meter := &ledger.Meter{Store: a.Store, Holds: holds, Catalog: catalog, Logger: a.Logger,
		ProviderTypes: types, ReservationTTL: cfg.Budgets.ReservationTTL, USDToCNY: cfg.Budgets.USDToCNY}
	limiter, err := a.newLimiter(ctx)
	if err != nil {
		return nil, err
	}
	meter.Limiter = limiter
	if u := cfg.Budgets.Unpriced; u != nil {
		meter.Unpriced = &ledger.Fallback{Currency: u.Currency, Input: u.Input, Output: u.Output, Image: u.Image}
	}
	// The bill outbox (internal/outbox): every bill durable on local disk
	// until the store holds it.
	stopOutbox, err := startOutbox(cfg.Budgets.Outbox, meter, a.Logger)
	if err != nil {
		return nil, err
	}
	a.onClose(stopOutbox)
	every := min(cfg.Budgets.ReservationTTL/4, time.Minute)
	reconcile := func(ctx context.Context) { meter.Reconcile(ctx, every) }
	if a.Store.Dialect() == store.Postgres { // one replica at a time
		a.background(func(ctx context.Context) { leaderOnly(ctx, cfg.Store, reconcilerLock, every, a.Logger, reconcile) })
	} else {
		a.background(reconcile)
	}
	return meter, nil
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

// Listeners are the sockets an App serves on.
type Listeners struct {
	API   net.Listener
	Admin net.Listener // nil unless admin.listen is set
}

// Close closes both.
func (l *Listeners) Close() {
	l.API.Close()
	if l.Admin != nil {
		l.Admin.Close()
	}
}

// Listen opens the configured listeners: the API's, and the admin API's
// when admin.listen sets one apart.
func (a *App) Listen() (*Listeners, error) {
	cfg := a.Config
	api, err := a.listen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	ls := &Listeners{API: api}
	if cfg.Admin.Listen != "" {
		if ls.Admin, err = a.listen(cfg.Admin.Listen); err != nil {
			api.Close()
			return nil, fmt.Errorf("admin.listen: %w", err)
		}
	}
	return ls, nil
}

// listen opens one listener with the config's per-connection limits.
func (a *App) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if n := a.Config.Server.SendBuffer; n > 0 {
		ln = sendBufferListener{ln, n}
	}
	// Outside the send buffer's wrapper, which needs the bare TCP connection.
	return httpapi.LimitConnsPerClient(ln, a.Config.Server.MaxConnsPerIP), nil
}

// Serve serves the API (and the admin API, when apart) until ctx ends,
// then drains: it stops accepting, lets running requests and streams
// finish within the grace period, and cuts what is left.
func (a *App) Serve(ctx context.Context, ls *Listeners) error {
	servers := []*http.Server{a.httpServer(a.API.Handler())}
	listeners := []net.Listener{ls.API}
	if ls.Admin != nil {
		servers, listeners = append(servers, a.httpServer(a.API.AdminHandler())), append(listeners, ls.Admin)
	}
	ectx, stopEvals := context.WithCancel(ctx)
	evalsDone := make(chan struct{})
	go func() { defer close(evalsDone); a.Evals.Serve(ectx) }()
	defer func() { stopEvals(); <-evalsDone }()
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	received := 0
	var failed error
	select {
	case failed = <-errc:
		received++
	case <-ctx.Done():
		a.drainDelay()
	}
	// Leased eval runs go back now, for another replica to resume while
	// this one finishes its requests.
	stopEvals()
	grace := a.Config.Server.ShutdownGrace
	a.Logger.Info("shutting down", "grace", grace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var drained sync.WaitGroup
	for _, srv := range servers {
		drained.Go(func() {
			if err := srv.Shutdown(graceCtx); err != nil {
				a.Logger.Warn("grace period over, closing remaining connections")
				srv.Close()
			}
		})
	}
	drained.Wait()
	for ; received < len(servers); received++ {
		if err := <-errc; failed == nil || errors.Is(failed, http.ErrServerClosed) {
			failed = err
		}
	}
	if errors.Is(failed, http.ErrServerClosed) {
		return nil
	}
	return failed
}

// httpServer is one listener's server, with the config's limits.
func (a *App) httpServer(h http.Handler) *http.Server {
	cfg := a.Config
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout or WriteTimeout: they would cut long streams. The
		// handlers bound every body from its head's arrival, and every write.
	}
}

// Running is an App serving in the background (tests, bench, drill).
type Running struct {
	*App
	URL      string // http://host:port
	AdminURL string // set when admin.listen is
	stop     func() error
}

// Start builds tidegate from cfg and serves it on cfg.Listen in the
// background; Stop drains and closes it.
func Start(ctx context.Context, cfg *config.Config, opts Options) (*Running, error) {
	a, err := New(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	ls, err := a.Listen()
	if err != nil {
		a.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(sctx, ls) }()
	var once sync.Once
	var stopped error
	stop := func() error {
		once.Do(func() {
			cancel()
			stopped = <-served
			a.Close()
		})
		return stopped
	}
	r := &Running{App: a, URL: "http://" + ls.API.Addr().String(), stop: stop}
	if ls.Admin != nil {
		r.AdminURL = "http://" + ls.Admin.Addr().String()
	}
	return r, nil
}

// Stop drains the server and closes the app, returning what Serve
// returned; calls after the first return the same.
func (r *Running) Stop() error { return r.stop() }

// OpenStore opens a store: sqlite:PATH or postgres://….
func OpenStore(ctx context.Context, dsn string) (*store.DB, error) {
	return OpenStoreWith(ctx, dsn, store.Options{})
}

// StoreOptions are the config's store options.
func StoreOptions(cfg *config.Config, skipMigrate bool) store.Options {
	return store.Options{MaxConns: cfg.Database.MaxConns, SkipMigrate: skipMigrate}
}

// OpenStoreWith is OpenStore with options (pool size, migrating or not).
func OpenStoreWith(ctx context.Context, dsn string, opts store.Options) (*store.DB, error) {
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		return sqlite.OpenWith(ctx, path, opts)
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgres.OpenWith(ctx, dsn, opts)
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

// MasterKey is the master key as tidegate knows it: the key itself when
// the operator gave it or it was generated (or migrated) just now, else
// only its hash.
type MasterKey struct {
	Key  string // "" when only the hash is kept
	Hash [sha256.Size]byte
	// Note says where a key kept in the store lives, and whether it is shown;
	// "" for the operator's own key.
	Note string
}

// hashedSetting marks a stored master key kept as its hash.
const hashedSetting = "sha256:"

// ResolveMasterKey takes the key from the environment or the config, else
// generates one once and keeps only its hash in the store. A plaintext key
// left by an earlier version is replaced by its hash.
func ResolveMasterKey(ctx context.Context, cfg *config.Config, st *store.DB, getenv func(string) string) (MasterKey, error) {
	for _, k := range []string{getenv(MasterKeyEnv), cfg.MasterKey} {
		if k != "" {
			return MasterKey{Key: k, Hash: sha256.Sum256([]byte(k))}, nil
		}
	}
	path, ok := strings.CutPrefix(cfg.Store, "sqlite:")
	if !ok {
		// A generated key would sit in a database other replicas share:
		// with PostgreSQL the operator sets it.
		return MasterKey{}, fmt.Errorf("master_key: set master_key or %s (a key is generated only with the SQLite store)", MasterKeyEnv)
	}
	var generated string
	stored, created, err := st.SettingOnce(ctx, "master_key", func() string {
		generated = newMasterKey()
		return hashedForStore(generated)
	})
	if err != nil {
		return MasterKey{}, err
	}
	if created {
		return MasterKey{Key: generated, Hash: sha256.Sum256([]byte(generated)),
			Note: "generated now and shown only this once; " + path + " keeps its hash"}, nil
	}
	if h, ok := strings.CutPrefix(stored, hashedSetting); ok {
		var mk MasterKey
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return MasterKey{}, fmt.Errorf("master_key: the hash kept in %s is damaged; set %s", path, MasterKeyEnv)
		}
		copy(mk.Hash[:], b)
		mk.Note = "generated earlier and not shown again (" + path + " keeps only its hash); to use another, set " + MasterKeyEnv
		return mk, nil
	}
	// A plaintext key from an earlier version: keep only its hash from now on.
	if _, err := st.ReplaceSetting(ctx, "master_key", stored, hashedForStore(stored)); err != nil {
		return MasterKey{}, err
	}
	return MasterKey{Key: stored, Hash: sha256.Sum256([]byte(stored)),
		Note: "kept in plaintext until now, from now on only its hash; shown this last time"}, nil
}

func hashedForStore(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hashedSetting + hex.EncodeToString(sum[:])
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
