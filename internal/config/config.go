// Package config reads tidegate's YAML configuration: the only YAML reader.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/router"
)

// Config is the whole configuration. Zero fields take Default's values.
type Config struct {
	Listen      string      `yaml:"listen"`
	Store       string      `yaml:"store"`
	MasterKey   string      `yaml:"master_key"`
	LogLevel    string      `yaml:"log_level"`
	Server      Server      `yaml:"server"`
	Providers   []Provider  `yaml:"providers"`
	Models      []Model     `yaml:"models"`
	Prices      []Price     `yaml:"prices"`
	Budgets     Budgets     `yaml:"budgets"`
	Reliability Reliability `yaml:"reliability"`
	Observe     Observe     `yaml:"observe"`
	Admin       Admin       `yaml:"admin"`
	Database    Database    `yaml:"database"`
	Evals       Evals       `yaml:"evals"`
	Limits      Limits      `yaml:"limits"`
	Batches     Batches     `yaml:"batches"`
}

// Batches configures the Batch API (/v1/files, /v1/batches) and its executor.
type Batches struct {
	Disabled bool `yaml:"disabled"`
	// Dir keeps files on local disk (default: files/ beside a SQLite store,
	// else ./tidegate-data/files); unused when s3 is set.
	Dir string `yaml:"dir"`
	// S3, when set, keeps files in an S3-compatible bucket instead.
	S3 *S3 `yaml:"s3"`
	// MaxFileBytes bounds an uploaded file (default: server.body_limit,
	// which bounds the upload as well).
	MaxFileBytes int64 `yaml:"max_file_bytes"`
	// Window is how long a batch has (completion_window "24h"; default
	// 24h; shorter only to rehearse expiry).
	Window time.Duration `yaml:"window"`
	// Concurrency bounds the items in flight per process (default 8).
	Concurrency int `yaml:"concurrency"`
	// ItemTimeout bounds one attempt of an item (default 10m); a job whose
	// process died is run again after twice that (PostgreSQL; SQLite at start).
	ItemTimeout time.Duration `yaml:"item_timeout"`
	// Poll is how often open batches are looked at (default 1s).
	Poll time.Duration `yaml:"poll"`
}

// S3 locates a bucket of an S3-compatible store.
type S3 struct {
	Endpoint  string `yaml:"endpoint"` // https://s3.amazonaws.com, http://minio:9000
	Region    string `yaml:"region"`
	Bucket    string `yaml:"bucket"`
	Prefix    string `yaml:"prefix"`
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	PathStyle bool   `yaml:"path_style"`
}

// Evals configures eval runs.
type Evals struct {
	// Judge is the provider/model that grades judge items; its calls are
	// billed apart (purpose eval_judge). Empty: judge items fail to grade.
	Judge string `yaml:"judge"`
}

// Database tunes the store's connections (PostgreSQL).
type Database struct {
	// MaxConns bounds this replica's PostgreSQL connections: the server's
	// max_connections must cover replicas × MaxConns plus its own. Default 10.
	MaxConns int `yaml:"max_conns"`
}

// Admin configures the admin surface.
type Admin struct {
	// Listen serves /admin/* and /metrics on their own address (keep it on
	// a private network); they are then absent from the public listener.
	// Empty: both on the public listener, behind the master key.
	Listen string `yaml:"listen"`
}

// Observe configures what tidegate records and exports about requests.
type Observe struct {
	RequestLog RequestLog `yaml:"request_log"`
	Metrics    Metrics    `yaml:"metrics"`
	Tracing    Tracing    `yaml:"tracing"`
}

// RequestLog is the per-request log in the store.
type RequestLog struct {
	Disabled  bool          `yaml:"disabled"`  // default: on
	Retention time.Duration `yaml:"retention"` // default 168h (7 days)
	MaxRows   int64         `yaml:"max_rows"`  // the oldest beyond this are pruned; default 1,000,000
	// Bodies keeps request and answer bodies (streamed answers joined),
	// secrets redacted; default off.
	Bodies bool `yaml:"bodies"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Disabled bool `yaml:"disabled"` // default: on
	// Listen serves /metrics, unauthenticated, on its own address (for a
	// scraper on a private network); empty: /metrics on the main listener,
	// behind the master key.
	Listen string `yaml:"listen"`
}

// Tracing exports OpenTelemetry traces over OTLP/HTTP.
type Tracing struct {
	// Endpoint is the OTLP/HTTP collector, e.g. http://127.0.0.1:4318;
	// empty: no tracing.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of healthy requests traced; requests that
	// failed or were judged slow are always traced. Default 0.1.
	SampleRatio *float64 `yaml:"sample_ratio"`
	ServiceName string   `yaml:"service_name"` // default tidegate
}

// Reliability tunes failover. Zero fields take the defaults.
type Reliability struct {
	RequestTimeout      time.Duration `yaml:"request_timeout"`      // all attempts of a request together; default 10m
	FirstTokenTimeout   time.Duration `yaml:"first_token_timeout"`  // a stream attempt silent this long fails over; default 30s
	IdleTimeout         time.Duration `yaml:"idle_timeout"`         // silence after the first token that ends a stream; default 60s
	RetryRatio          float64       `yaml:"retry_ratio"`          // retries earned per request; default 0.2
	RetryBurst          float64       `yaml:"retry_burst"`          // retries saved up; default 10
	ConsecutiveFailures int           `yaml:"consecutive_failures"` // eject after this many in a row; default 3
	BaseEjection        time.Duration `yaml:"base_ejection"`        // first ejection, doubling to max_ejection; default 5s
	MaxEjection         time.Duration `yaml:"max_ejection"`         // default 5m
}

// Price overrides the catalog for a configured provider's model, per 1M tokens.
type Price struct {
	Model       string   `yaml:"model"` // provider/model, the provider by its configured name
	Currency    string   `yaml:"currency"`
	Input       float64  `yaml:"input"`
	Output      float64  `yaml:"output"`
	CachedInput *float64 `yaml:"cached_input"`
	CacheWrite  *float64 `yaml:"cache_write"`
	Effective   string   `yaml:"effective"` // YYYY-MM-DD; empty: always
}

// Budgets tunes reservations.
type Budgets struct {
	// OutputCap is the output a request without max_tokens is reserved for; default 4096.
	OutputCap int64 `yaml:"output_cap"`
	// ReservationTTL: after this a hold is presumed orphaned (its process
	// died) and released by the reconciler; default 15m. Keep it above the
	// longest request.
	ReservationTTL time.Duration `yaml:"reservation_ttl"`
	// USDToCNY converts spending into budgets of the other currency; default 7.2.
	USDToCNY float64 `yaml:"usd_to_cny"`
	// Outbox keeps every bill on local disk until the database holds it.
	Outbox Outbox `yaml:"outbox"`
	// Unpriced, when set, prices models the catalog does not know (per 1M
	// tokens, per image); unset, a request under a hard budget whose plan
	// reaches an unpriced model is refused (403 price_unknown).
	Unpriced *Unpriced `yaml:"unpriced"`
}

// Unpriced is the opt-in fallback price of models without a catalog price.
type Unpriced struct {
	Currency string  `yaml:"currency"`
	Input    float64 `yaml:"input"`  // per 1M prompt tokens
	Output   float64 `yaml:"output"` // per 1M completion tokens
	Image    float64 `yaml:"image"`  // per image
}

func (b *Batches) applyDefaults(store string, bodyLimit int64) {
	if b.Dir == "" {
		if path, ok := strings.CutPrefix(store, "sqlite:"); ok {
			b.Dir = filepath.Join(filepath.Dir(path), "files")
		} else {
			b.Dir = DataDir + "/files"
		}
	}
	if b.MaxFileBytes == 0 {
		b.MaxFileBytes = bodyLimit
	}
	if b.Window == 0 {
		b.Window = 24 * time.Hour
	}
	if b.Concurrency == 0 {
		b.Concurrency = 8
	}
	if b.ItemTimeout == 0 {
		b.ItemTimeout = 10 * time.Minute
	}
	if b.Poll == 0 {
		b.Poll = time.Second
	}
}

func (o *Outbox) applyDefaults(store string) {
	if o.Path == "" {
		if path, ok := strings.CutPrefix(store, "sqlite:"); ok {
			o.Path = path + ".outbox"
		} else {
			// One file per database: replicas on one host sharing a data
			// directory must each set their own path (the file is locked).
			sum := sha256.Sum256([]byte(store))
			o.Path = DataDir + "/outbox-" + hex.EncodeToString(sum[:6])
		}
	}
	if o.MaxPending == 0 {
		o.MaxPending = 100_000
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 256 << 20
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Second
	}
}

// Outbox bounds the local journal of bills (internal/outbox).
type Outbox struct {
	// Path of the file; default: the SQLite file's path + ".outbox", or
	// ./tidegate-data/outbox-<hash of the store URL> with PostgreSQL. Each
	// replica needs its own, on a disk that outlives the process.
	Path string `yaml:"path"`
	// MaxPending bounds the bills open or waiting for the database; past
	// it (or MaxBytes) metered requests are refused with 503. Default 100000.
	MaxPending int `yaml:"max_pending"`
	// MaxBytes bounds the file; default 256 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// SyncInterval is how often the file is fsynced: what a power loss can
	// lose at most. Default 1s.
	SyncInterval time.Duration `yaml:"sync_interval"`
}

// Server holds the HTTP server's limits and timeouts.
type Server struct {
	BodyLimit         int64         `yaml:"body_limit"`          // bytes; default 32 MiB
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // default 10s
	BodyReadTimeout   time.Duration `yaml:"body_read_timeout"`   // reading the request body; default 60s
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // keep-alive idle; default 120s
	WriteTimeout      time.Duration `yaml:"write_timeout"`       // each write to a client; default 30s
	ShutdownGrace     time.Duration `yaml:"shutdown_grace"`      // running streams may finish; default 30s
	// DrainDelay is how long a replica told to stop (SIGTERM) keeps
	// serving new requests with /readyz failing, so that load balancers
	// take it out first; default 0. A replica exits within DrainDelay +
	// ShutdownGrace: keep terminationGracePeriodSeconds above that.
	DrainDelay time.Duration `yaml:"drain_delay"`
	// SendBuffer caps each client connection's kernel send buffer, in
	// bytes; 0 leaves it to the kernel (which grows it up to 4 MiB on Linux).
	SendBuffer int `yaml:"send_buffer"`
	// MaxConnsPerIP caps open connections from one client address (an
	// IPv6 /64 counts as one); past it new connections are refused at
	// once. Default 256.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// BodyMemory caps the memory request bodies hold at once, all requests
	// together: BodyCopies times a body while it is read, decoded and sent,
	// its size while its answer streams. Past it: 503. Default 256 MiB.
	BodyMemory int64 `yaml:"body_memory"`
	// AuthFailureLimit is how many failed authentications one client
	// address may make in a minute before it is answered 429 for the rest
	// of that minute. Default 20.
	AuthFailureLimit int `yaml:"auth_failure_limit"`
}

// BodyCopies is what a request body costs while it is read, decoded and
// sent upstream, in multiples of its size (httpapi holds that much of
// server.body_memory per body).
const BodyCopies = 4

// Provider is one upstream account.
type Provider struct {
	Name    string `yaml:"name"`
	Type    string `yaml:"type"`
	BaseURL string `yaml:"base_url"`
	APIKey  string `yaml:"api_key"`
	// APIKeys are several credentials of one account or of several: plans
	// rotate among them, and a rejected one is taken out alone.
	APIKeys []string `yaml:"api_keys"`
	// StoredCredentials adds the keys stored for this provider through
	// POST /admin/credentials (encrypted under TIDEGATE_SECRET_KEY) at start.
	StoredCredentials bool     `yaml:"stored_credentials"`
	Models            []string `yaml:"models"`
	// Timeout bounds the wait for the upstream's response headers; default 60s.
	Timeout time.Duration `yaml:"timeout"`
	// Sim configures a sim fleet (type sim).
	Sim *Sim `yaml:"sim"`
	// MaxConcurrency bounds concurrent calls to each of this provider's
	// models (a full target is skipped); 0: unbounded.
	MaxConcurrency int `yaml:"max_concurrency"`
	// ContextWindows gives models' context lengths in tokens; plans skip a
	// target too small for a prompt.
	ContextWindows map[string]int `yaml:"context_windows"`
	// Unsupported lists what a model cannot do (tools, vision); plans skip
	// it for requests that need them. Unlisted: assumed able.
	Unsupported map[string][]string `yaml:"unsupported"`
	// Self-hosted pool (types in SelfHostedTypes; see pool.go).
	// Accelerator names the card kind (h100, 910b, …), for status.
	Accelerator string `yaml:"accelerator"`
	// CostPerHour is what the server costs to run; balance: load divides
	// it by the tokens/s the server has shown into a cost per token.
	CostPerHour *Money `yaml:"cost_per_hour"`
	// Scheduling "priority": the server orders its queue by a request's
	// priority field (vLLM --scheduling-policy priority); online requests
	// are sent with priority 0, ahead of batch work.
	Scheduling string `yaml:"scheduling"`
	// MetricsURL is where the server's load is read; default: the
	// server's own path beside base_url (/metrics, or /api/ps for Ollama).
	MetricsURL string `yaml:"metrics_url"`
}

// Sim is the configuration of a sim fleet.
type Sim struct {
	Seed   uint64      `yaml:"seed"`
	Models []sim.Model `yaml:"models"`
	// Tasks is a suite file (native JSONL) whose items the fleet's models
	// with skills answer by skill; default: the built-in demo suite.
	Tasks string `yaml:"tasks"`
}

// Model is a public model name and its ordered targets.
type Model struct {
	Name    string   `yaml:"name"`
	Targets []string `yaml:"targets"`
	// MaxConcurrency bounds concurrent requests for this name (past it: a
	// fast 429); 0: unbounded.
	MaxConcurrency int `yaml:"max_concurrency"`
	// Hedge races the next target against a stream whose first token has
	// not come after HedgeAfter, or, when that is unset, after the first
	// target's learned p95 time to first token.
	Hedge      bool          `yaml:"hedge"`
	HedgeAfter time.Duration `yaml:"hedge_after"`
	// Weights, one per target, split traffic by weight instead of order.
	Weights []float64 `yaml:"weights"`
	// Resume continues a text stream that broke after its first token on
	// the next target (which must honour a prefix message).
	Resume bool `yaml:"resume"`
	// Order "latency" puts the target with the lowest learned median time
	// to first token (streams) or to a whole answer (non-streamed) first; one
	// request in 20 keeps the configured order, so a target that recovered
	// is noticed. "" or "config": as listed.
	Order string `yaml:"order"`
	// Route chooses targets per prompt; nil: Order or Weights.
	Route *Route `yaml:"route"`
	// Balance "load" sends each request to the cheapest self-hosted target
	// predicted to meet TTFTSLO now, else to the route's hosted targets.
	Balance string        `yaml:"balance"`
	TTFTSLO time.Duration `yaml:"ttft_slo"`
}

// Route is a model's per-prompt routing.
type Route struct {
	// Ability sends each prompt to the cheapest target predicted to answer
	// it right, learned from a suite's eval results.
	Ability *Ability `yaml:"ability"`
}

// Ability configures an ability route.
type Ability struct {
	Suite string `yaml:"suite"`
	// Quality is the bar: the share of the best target's quality on the
	// suite the route keeps on prompts it has not seen, in (0, 1].
	Quality float64 `yaml:"quality"`
	// Verify turns the route into a cascade: each answer is checked before
	// the client sees it (json_schema, regex or judge) and a failed check
	// escalates to the next target. Schema, Pattern or Rubric is the check.
	Verify  string `yaml:"verify"`
	Schema  any    `yaml:"schema"`
	Pattern string `yaml:"pattern"`
	Rubric  string `yaml:"rubric"`
	// Shadow is the share of live prompts also sent, off the request path,
	// to the route's best target to grade the routed answer; 0: none.
	Shadow float64 `yaml:"shadow"`
}

// VerifyExpected is the check a cascade's grader reads: the schema as
// JSON, or the pattern or rubric as a JSON string.
func (a *Ability) VerifyExpected() (json.RawMessage, error) {
	switch a.Verify {
	case "json_schema":
		return json.Marshal(a.Schema)
	case "regex":
		return json.Marshal(a.Pattern)
	}
	return json.Marshal(a.Rubric)
}

// DataDir is where the demo keeps its state.
const DataDir = "./tidegate-data"

// Default is the demo: the sim fleet, SQLite under ./tidegate-data/.
func Default() *Config {
	c := &Config{
		Listen:    "127.0.0.1:8080",
		Store:     "sqlite:" + DataDir + "/tidegate.db",
		Providers: []Provider{{Name: "sim", Type: "sim"}},
		Models: []Model{
			{Name: "chat", Targets: []string{"sim/balanced", "sim/fast"}},
			{Name: "chat-fast", Targets: []string{"sim/fast"}},
			{Name: "chat-flaky", Targets: []string{"sim/flaky", "sim/fast"}},
			{Name: "embed", Targets: []string{"sim/embed"}},
			// Learns from results of the built-in demo suite
			// (tidegate eval run demo --models sim/nano,sim/mini,sim/pro,sim/max);
			// before a run, the listed order.
			{Name: "ability", Targets: []string{"sim/max", "sim/pro", "sim/mini", "sim/nano"},
				Route: &Route{Ability: &Ability{Suite: "demo", Quality: 0.95}}},
			{Name: "instruct", Targets: []string{"sim/instruct"}},
			{Name: "omni-moderation-latest", Targets: []string{"sim/moderation"}},
			{Name: "transcribe", Targets: []string{"sim/whisper"}},
			{Name: "speech", Targets: []string{"sim/tts"}},
			{Name: "image-edit", Targets: []string{"sim/image"}},
		},
	}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	s := &c.Server
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Store == "" {
		c.Store = "sqlite:" + DataDir + "/tidegate.db"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Database.MaxConns == 0 {
		c.Database.MaxConns = 10
	}
	if s.BodyLimit == 0 {
		s.BodyLimit = 32 << 20
	}
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = 10 * time.Second
	}
	if s.BodyReadTimeout == 0 {
		s.BodyReadTimeout = 60 * time.Second
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = 120 * time.Second
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = 30 * time.Second
	}
	if s.ShutdownGrace == 0 {
		s.ShutdownGrace = 30 * time.Second
	}
	if s.MaxConnsPerIP == 0 {
		s.MaxConnsPerIP = 256
	}
	if s.BodyMemory == 0 {
		s.BodyMemory = 256 << 20
	}
	if s.AuthFailureLimit == 0 {
		s.AuthFailureLimit = 20
	}
	if c.Budgets.OutputCap == 0 {
		c.Budgets.OutputCap = 4096
	}
	if c.Budgets.ReservationTTL == 0 {
		c.Budgets.ReservationTTL = 15 * time.Minute
	}
	if c.Budgets.USDToCNY == 0 {
		c.Budgets.USDToCNY = 7.2
	}
	c.Budgets.Outbox.applyDefaults(c.Store)
	c.Limits.applyDefaults()
	if c.Observe.RequestLog.Retention == 0 {
		c.Observe.RequestLog.Retention = 7 * 24 * time.Hour
	}
	if c.Observe.Tracing.SampleRatio == nil {
		c.Observe.Tracing.SampleRatio = ptr(0.1)
	}
	if c.Observe.Tracing.ServiceName == "" {
		c.Observe.Tracing.ServiceName = "tidegate"
	}
	c.Batches.applyDefaults(c.Store, s.BodyLimit)
	r := &c.Reliability
	if r.RequestTimeout == 0 {
		r.RequestTimeout = 10 * time.Minute
	}
	if r.FirstTokenTimeout == 0 {
		r.FirstTokenTimeout = 30 * time.Second
	}
	if r.IdleTimeout == 0 {
		r.IdleTimeout = 60 * time.Second
	}
	for i := range c.Providers {
		p := &c.Providers[i]
		if p.Timeout == 0 {
			p.Timeout = 60 * time.Second
		}
		if p.Type == "sim" && len(p.Models) == 0 {
			fleet := sim.DefaultFleet()
			if p.Sim != nil && len(p.Sim.Models) > 0 {
				fleet = p.Sim.Models
			}
			for _, m := range fleet {
				p.Models = append(p.Models, m.Name)
			}
		}
	}
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, os.LookupEnv)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// Expand replaces ${VAR} and ${VAR:-default}. An unset variable without a
// default is an error naming it: a missing key should stop start-up, not
// reach a provider as an empty string.
func Expand(data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	var errs []error
	out := envRef.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		name := string(sub[1])
		if v, ok := lookup(name); ok {
			return []byte(yamlSafe(v))
		}
		if len(sub[2]) > 0 {
			return sub[3]
		}
		line := 1 + bytes.Count(data[:bytes.Index(data, m)], []byte("\n"))
		errs = append(errs, fmt.Errorf("line %d: environment variable %s is not set", line, name))
		return nil
	})
	return out, errors.Join(errs...)
}

// yamlSafe keeps an expanded value from breaking the YAML around it.
func yamlSafe(v string) string {
	if strings.ContainsAny(v, "\n:#{}[]&*!|>'\"%@`") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
	}
	return v
}

// Parse expands, decodes (rejecting unknown fields) and validates a config.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	expanded, err := Expand(data, lookup)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", explainDecodeError(expanded, err))
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	// publicNameRE keeps public model names addressable: no '/' (it would
	// read as provider/model), no spaces or control characters.
	publicNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$`)
)

// plainModelID reports whether an upstream model id is printable: ids may
// hold '/' (vLLM serves "org/model"), but never spaces or control characters.
func plainModelID(id string) bool {
	return id != "" && !strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// Types lists every provider type.
func Types() []string {
	ts := append(provider.PresetTypes(), "anthropic", "gemini", "sim")
	slices.Sort(ts)
	return ts
}

// Validate checks the config; each problem names its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !strings.HasPrefix(c.Store, "sqlite:") && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		bad("store", "want sqlite:PATH or postgres://…, got %q", c.Store)
	}
	if n := c.Database.MaxConns; n < 1 || n > 1000 {
		bad("database.max_conns", "want 1 to 1000 connections, got %d", n)
	}
	for _, e := range c.Limits.validate() {
		bad("limits", "%v", e)
	}
	if c.Server.BodyLimit < 1024 {
		bad("server.body_limit", "must be at least 1024 bytes")
	}
	if c.Server.BodyMemory < BodyCopies*c.Server.BodyLimit {
		// Else a body the limit admits could never be read.
		bad("server.body_memory", "must be at least %d × server.body_limit (%d bytes)", BodyCopies, BodyCopies*c.Server.BodyLimit)
	}
	if c.Server.MaxConnsPerIP < 1 {
		bad("server.max_conns_per_ip", "must be positive")
	}
	if c.Server.AuthFailureLimit < 1 {
		bad("server.auth_failure_limit", "must be positive")
	}
	if s := c.Server; s.ReadHeaderTimeout < 0 || s.BodyReadTimeout < 0 || s.IdleTimeout < 0 || s.WriteTimeout < 0 || s.ShutdownGrace < 0 || s.DrainDelay < 0 {
		bad("server", "timeouts must not be negative")
	}
	if c.Admin.Listen != "" && c.Admin.Listen == c.Listen {
		bad("admin.listen", "must differ from listen")
	}
	if t := c.Observe.Tracing; t.Endpoint != "" && !strings.HasPrefix(t.Endpoint, "http://") && !strings.HasPrefix(t.Endpoint, "https://") {
		bad("observe.tracing.endpoint", "want an http:// or https:// OTLP/HTTP collector URL, got %q", t.Endpoint)
	}
	if r := *c.Observe.Tracing.SampleRatio; r < 0 || r > 1 {
		bad("observe.tracing.sample_ratio", "must be between 0 and 1")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	if len(c.Providers) == 0 {
		bad("providers", "needs at least one provider (type sim serves a simulated fleet)")
	}
	types := Types()
	providers := map[string]*Provider{}
	for i := range c.Providers {
		p := &c.Providers[i]
		f := fmt.Sprintf("providers[%d]", i)
		switch {
		case p.Name == "":
			bad(f+".name", "is required")
		case !nameRE.MatchString(p.Name):
			bad(f+".name", "%q must be lower-case letters, digits, '-' or '_'", p.Name)
		case providers[p.Name] != nil:
			bad(f+".name", "%q is used twice", p.Name)
		}
		providers[p.Name] = p
		if !slices.Contains(types, p.Type) {
			bad(f+".type", "unknown type %q (want one of %s)", p.Type, strings.Join(types, ", "))
			continue
		}
		if p.BaseURL != "" {
			if u, err := url.Parse(p.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(f+".base_url", "%q is not an http(s) URL", p.BaseURL)
			}
		}
		preset, isPreset := provider.LookupPreset(p.Type)
		needsKey := p.Type == "anthropic" || p.Type == "gemini" || (isPreset && !preset.NoKey)
		if needsKey && p.APIKey == "" && len(p.APIKeys) == 0 && !p.StoredCredentials {
			bad(f+".api_key", "is required for type %s", p.Type)
		}
		if p.Sim != nil && p.Type != "sim" {
			bad(f+".sim", "is only for type sim")
		}
		if p.Timeout < 0 {
			bad(f+".timeout", "must not be negative")
		}
		if p.MaxConcurrency < 0 {
			bad(f+".max_concurrency", "must not be negative")
		}
		for j, m := range p.Models {
			if !plainModelID(m) {
				bad(fmt.Sprintf("%s.models[%d]", f, j), "%q must not be empty or hold spaces or control characters", m)
			}
		}
		for m, caps := range p.Unsupported {
			for _, c := range caps {
				if c != "tools" && c != "vision" {
					bad(f+".unsupported."+m, "unknown capability %q (want tools or vision)", c)
				}
			}
		}
	}
	public := map[string]bool{}
	for i, m := range c.Models {
		f := fmt.Sprintf("models[%d]", i)
		switch {
		case m.Name == "":
			bad(f+".name", "is required")
		case !publicNameRE.MatchString(m.Name):
			bad(f+".name", "%q must be letters, digits, '.', '-', '_', ':', '@' or '+' (no '/', spaces or control characters), at most 128", m.Name)
		case public[m.Name]:
			bad(f+".name", "%q is used twice", m.Name)
		}
		public[m.Name] = true
		if len(m.Targets) == 0 {
			bad(f+".targets", "needs at least one provider/model")
		}
		if m.HedgeAfter < 0 {
			bad(f+".hedge_after", "must not be negative")
		}
		if m.MaxConcurrency < 0 {
			bad(f+".max_concurrency", "must not be negative")
		}
		if m.Weights != nil {
			positive := false
			for _, w := range m.Weights {
				positive = positive || w > 0
				if w < 0 {
					bad(f+".weights", "weights must not be negative")
				}
			}
			if len(m.Weights) != len(m.Targets) || !positive {
				bad(f+".weights", "want one weight per target, at least one positive")
			}
			if m.Order == "latency" {
				bad(f+".order", "latency order and weights exclude each other")
			}
		}
		if m.Order != "" && m.Order != "config" && m.Order != "latency" {
			bad(f+".order", "want config or latency, got %q", m.Order)
		}
		if m.Route != nil {
			a := m.Route.Ability
			switch {
			case a == nil:
				bad(f+".route", "want ability: {suite, quality}")
			case a.Suite == "":
				bad(f+".route.ability.suite", "is required")
			case !(a.Quality > 0 && a.Quality <= 1):
				bad(f+".route.ability.quality", "want a share of the best target's quality in (0, 1], got %v", a.Quality)
			case m.Weights != nil || m.Order == "latency":
				bad(f+".route", "an ability route excludes weights and latency order")
			default:
				c.checkCascade(f+".route.ability", a, bad)
			}
		}
		for j, t := range m.Targets {
			tf := fmt.Sprintf("%s.targets[%d]", f, j)
			tg, ok := router.ParseTarget(t)
			if !ok {
				bad(tf, "%q is not provider/model", t)
				continue
			}
			p := providers[tg.Provider]
			if p == nil {
				bad(tf, "no provider is named %q", tg.Provider)
				continue
			}
			if len(p.Models) > 0 && !slices.Contains(p.Models, tg.Model) {
				bad(tf, "provider %q does not list model %q", tg.Provider, tg.Model)
			}
		}
	}
	c.validatePool(providers, bad)
	for i, p := range c.Prices {
		f := fmt.Sprintf("prices[%d]", i)
		if _, ok := router.ParseTarget(p.Model); !ok {
			bad(f+".model", "%q is not provider/model", p.Model)
		} else if t, _ := router.ParseTarget(p.Model); providers[t.Provider] == nil {
			bad(f+".model", "no provider is named %q", t.Provider)
		}
		if p.Currency != "CNY" && p.Currency != "USD" {
			bad(f+".currency", "want CNY or USD, got %q", p.Currency)
		}
		if !price(p.Input) || !price(p.Output) || (p.CachedInput != nil && !price(*p.CachedInput)) || (p.CacheWrite != nil && !price(*p.CacheWrite)) {
			bad(f, "prices must be finite numbers from 0 to %d", ledger.MaxPrice)
		}
		if p.Effective != "" {
			if _, err := time.Parse("2006-01-02", p.Effective); err != nil {
				bad(f+".effective", "want YYYY-MM-DD, got %q", p.Effective)
			}
		}
	}
	if r := c.Reliability; r.RequestTimeout < 0 || r.FirstTokenTimeout < 0 || r.IdleTimeout < 0 || r.RetryRatio < 0 || r.RetryBurst < 0 {
		bad("reliability", "timeouts and the retry budget must not be negative")
	}
	if c.Budgets.OutputCap < 1 || c.Budgets.ReservationTTL < time.Second || !(c.Budgets.USDToCNY > 0) || math.IsInf(c.Budgets.USDToCNY, 0) {
		bad("budgets", "output_cap, reservation_ttl and usd_to_cny must be positive (and finite)")
	}
	if u := c.Budgets.Unpriced; u != nil {
		if u.Currency != "CNY" && u.Currency != "USD" {
			bad("budgets.unpriced.currency", "want CNY or USD, got %q", u.Currency)
		}
		if !price(u.Input) || !price(u.Output) || !price(u.Image) {
			bad("budgets.unpriced", "prices must be finite numbers from 0 to %d", ledger.MaxPrice)
		}
	}
	if o := c.Budgets.Outbox; o.MaxPending < 1 || o.MaxBytes < 1<<20 || o.SyncInterval < time.Millisecond {
		bad("budgets.outbox", "max_pending must be positive, max_bytes at least 1 MiB, sync_interval at least 1ms")
	}
	return errors.Join(errs...)
}

func ptr[T any](v T) *T { return &v }

// price reports a usable price: finite, not negative, at most ledger.MaxPrice
// (YAML takes .nan and .inf, which compare false to everything).
func price(v float64) bool { return v >= 0 && v <= ledger.MaxPrice }
