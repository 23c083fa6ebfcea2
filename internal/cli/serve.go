package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/router"
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
	master, err := resolveMasterKey(ctx, cfg, st)
	if err != nil {
		return err
	}
	masterKey := master.Key // "" when only its hash is kept
	var sealer *store.Sealer
	if secret := os.Getenv(SecretKeyEnv); secret != "" {
		if sealer, err = store.NewSealer(secret); err != nil {
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
	order := make([]string, 0, len(cfg.Providers))
	models := make(map[string][]string, len(cfg.Providers))
	types := make(map[string]string, len(cfg.Providers))
	for _, p := range cfg.Providers {
		order = append(order, p.Name)
		models[p.Name] = p.Models
		types[p.Name] = p.Type
	}
	var holds ledger.Budgeter = ledger.DBHolds{Store: st}
	if st.Dialect() == store.SQLite {
		holds = &ledger.LocalHolds{Store: st} // SQLite: one process owns the budgets
	}
	meter := &ledger.Meter{Store: st, Holds: holds, Catalog: catalog, Limiter: ledger.NewLimiter(nil), Logger: logger,
		ProviderTypes: types, ReservationTTL: cfg.Budgets.ReservationTTL, USDToCNY: cfg.Budgets.USDToCNY}
	reconcileCtx, stopReconcile := context.WithCancel(context.Background())
	defer stopReconcile()
	go meter.Reconcile(reconcileCtx, min(cfg.Budgets.ReservationTTL/4, time.Minute))
	rt := router.New(order, models, cfg.Routes())
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
		TTFTs:             &gateway.TTFT{},
		Answers:           &gateway.TTFT{},
		IdleTimeout:       cfg.Reliability.IdleTimeout,
	}
	targetLimits, routeLimits := map[string]int{}, map[string]int{}
	gw.ContextWindows = map[string]int{}
	for _, p := range cfg.Providers {
		for _, m := range p.Models {
			targetLimits[p.Name+"/"+m] = p.MaxConcurrency
		}
		for m, w := range p.ContextWindows {
			gw.ContextWindows[p.Name+"/"+m] = w
		}
		for m, caps := range p.Unsupported {
			if gw.Unsupported == nil {
				gw.Unsupported = map[string][]string{}
			}
			gw.Unsupported[p.Name+"/"+m] = caps
		}
	}
	gw.Hedges, gw.Resume = map[string]time.Duration{}, map[string]bool{}
	for _, m := range cfg.Models {
		gw.Resume[m.Name] = m.Resume
		if m.Order == "latency" {
			if gw.LatencyOrder == nil {
				gw.LatencyOrder = map[string]bool{}
			}
			gw.LatencyOrder[m.Name] = true
		}
		routeLimits[m.Name] = m.MaxConcurrency
		if m.Hedge || m.HedgeAfter > 0 {
			gw.Hedges[m.Name] = m.HedgeAfter // 0: learned p95 time to first token
		}
	}
	gw.TargetSlots, gw.RouteSlots = gateway.NewSlots(targetLimits), gateway.NewSlots(routeLimits)
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
	api.MasterKeyHash = master.Hash[:]
	api.BodyMemory, api.AuthFailureLimit = cfg.Server.BodyMemory, cfg.Server.AuthFailureLimit
	api.AdminSeparate = cfg.Admin.Listen != ""
	srv := newHTTPServer(cfg, api.Handler())
	ln, err := openListener(cfg.Listen, cfg)
	if err != nil {
		return err
	}
	servers := []*http.Server{srv}
	listeners := []net.Listener{ln}
	if api.AdminSeparate {
		adminLn, err := openListener(cfg.Admin.Listen, cfg)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin.listen: %w", err)
		}
		servers, listeners = append(servers, newHTTPServer(cfg, api.AdminHandler())), append(listeners, adminLn)
	}
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "tidegate %s listening on http://%s (ready in %s)\n", Version, addr, time.Since(started).Round(time.Millisecond))
	if api.AdminSeparate {
		fmt.Fprintf(stdout, "admin API and metrics on http://%s only\n", listeners[1].Addr())
	}
	if demo {
		fmt.Fprintf(stdout, "demo mode: the simulated fleet, state in %s\n", config.DataDir)
	}
	printMasterKey(stdout, master, addr)
	logger.Info("listening", "addr", addr, "providers", len(cfg.Providers), "models", len(cfg.Models))

	if *pprofAddr != "" {
		stopProfiler, err := serveProfiler(*pprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopProfiler()
	}
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
	}
	// Graceful drain: stop accepting, let running requests and streams
	// finish within the grace period, then cut what is left.
	logger.Info("shutting down", "grace", cfg.Server.ShutdownGrace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace)
	defer cancel()
	var drained sync.WaitGroup
	for _, srv := range servers {
		drained.Go(func() {
			if err := srv.Shutdown(graceCtx); err != nil {
				logger.Warn("grace period over, closing remaining connections")
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

// newHTTPServer is one listener's server, with the config's limits.
func newHTTPServer(cfg *config.Config, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout or WriteTimeout: they would cut long streams. The
		// handlers bound every body from its head's arrival, and every write.
	}
}

// openListener opens a listener with the config's per-connection limits.
func openListener(addr string, cfg *config.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg.Server.SendBuffer > 0 {
		ln = sendBufferListener{ln, cfg.Server.SendBuffer}
	}
	// Outside the send buffer's wrapper, which needs the bare TCP connection.
	return httpapi.LimitConnsPerClient(ln, cfg.Server.MaxConnsPerIP), nil
}

// masterKey is the master key as serve knows it: the key itself when the
// operator gave it or it was generated now, else only its hash.
type masterKey struct {
	Key  string // "" when only the hash is kept
	Hash [sha256.Size]byte
	// Note says where a key kept in the store lives; "" for an operator's key.
	Note string
}

// hashedSetting marks a stored master key kept as its hash.
const hashedSetting = "sha256:"

// resolveMasterKey takes the key from the environment or the config, else
// generates one once and keeps only its hash in the store. A plaintext key
// left by an earlier version is replaced by its hash.
func resolveMasterKey(ctx context.Context, cfg *config.Config, st *store.DB) (masterKey, error) {
	for _, k := range []string{os.Getenv(MasterKeyEnv), cfg.MasterKey} {
		if k != "" {
			return masterKey{Key: k, Hash: sha256.Sum256([]byte(k))}, nil
		}
	}
	path, ok := strings.CutPrefix(cfg.Store, "sqlite:")
	if !ok {
		// A generated key would sit in a database other replicas share:
		// with PostgreSQL the operator sets it.
		return masterKey{}, fmt.Errorf("master_key: set master_key or %s (a key is generated only with the SQLite store)", MasterKeyEnv)
	}
	var generated string
	stored, created, err := st.SettingOnce(ctx, "master_key", func() string {
		generated = newMasterKey()
		return hashedForStore(generated)
	})
	if err != nil {
		return masterKey{}, err
	}
	if created {
		return masterKey{Key: generated, Hash: sha256.Sum256([]byte(generated)),
			Note: "generated now and shown only this once; " + path + " keeps its hash"}, nil
	}
	if h, ok := strings.CutPrefix(stored, hashedSetting); ok {
		var mk masterKey
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return masterKey{}, fmt.Errorf("master_key: the hash kept in %s is damaged; set %s", path, MasterKeyEnv)
		} else {
			copy(mk.Hash[:], b)
		}
		mk.Note = "generated earlier and not shown again (" + path + " keeps only its hash); to use another, set " + MasterKeyEnv
		return mk, nil
	}
	// A plaintext key from an earlier version: keep only its hash from now on.
	if _, err := st.ReplaceSetting(ctx, "master_key", stored, hashedForStore(stored)); err != nil {
		return masterKey{}, err
	}
	return masterKey{Key: stored, Hash: sha256.Sum256([]byte(stored)),
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

// printMasterKey says what the operator needs about the master key: a key
// known in full is printed (it was generated or migrated just now), with a
// ready curl line; a key kept only as its hash is never shown.
func printMasterKey(w io.Writer, mk masterKey, addr string) {
	switch {
	case mk.Note == "":
		return // the operator's own key
	case mk.Key == "":
		fmt.Fprintf(w, "master key: %s\n", mk.Note)
	default:
		fmt.Fprintf(w, "master key (%s): %s\n", mk.Note, mk.Key)
		fmt.Fprintf(w, "try:\n  curl -s http://%s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n", addr, mk.Key)
	}
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
