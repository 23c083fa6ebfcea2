package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/router"
)

// maxTargetsPerServer bounds the models tracked on one server beyond its
// configured ones: the names come from its metrics, which may name many.
const maxTargetsPerServer = 64

// Server is one self-hosted server whose load is read.
type Server struct {
	Name        string // the provider's name
	Kind        Kind
	URL         string // where its load is read; "" (and no Read): in-flight counts alone
	Accelerator string
	// CostPerHour is the server's declared cost in CNY; 0: not declared.
	CostPerHour float64
	// Read, when set, reads the signals in process instead of over HTTP
	// (the built-in sim fleet).
	Read func(ctx context.Context) (map[string]Signals, error)
	// Pooled puts the server in the pool: Reports lists its configured
	// targets. A server outside it is tracked for routing, not reported.
	Pooled bool
	// Models are its configured models (its models: list and the routes
	// naming it): what its /metrics names besides is not a target. With
	// AnyModel (it lists no models: it serves any name) a model tidegate
	// has sent calls to is reported too.
	Models   []string
	AnyModel bool
}

// Config configures a Tracker.
type Config struct {
	Servers []Server
	// Interval is the time between scrapes; default 1s. Signals older than
	// three intervals are stale: the server is judged by in-flight counts.
	Interval time.Duration
	// HTTP scrapes the servers; nil: a client that gives up after Interval.
	HTTP   *http.Client
	Logger *slog.Logger
}

// Tracker holds the live load of every self-hosted target: the servers'
// own signals, scraped about once a second, and tidegate's own calls in
// flight between scrapes. It learns each target's time to first token,
// service time and throughput, and forecasts a request sent now. Safe for
// concurrent use.
type Tracker struct {
	interval time.Duration
	http     *http.Client
	logger   *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	servers map[string]*server // by provider name
	targets map[router.Target]*target
	// onlineStarted counts the attempts of API requests started on the
	// pool's targets, for shares: the traffic status's requests count.
	onlineStarted int64
}

type server struct {
	Server
	signals   map[string]Signals // by model name; "" the server's totals
	scrapedAt time.Time
	failing   bool // the last scrape failed (logged once, and once on recovery)
	scraped   bool // a scrape has succeeded at least once
	// tracked counts its targets beyond the configured models; full is
	// set (and logged) once they reach maxTargetsPerServer.
	tracked int
	full    bool
	insane  bool // a reading was dropped as insane (logged once)
}

// New makes a tracker; Run scrapes.
func New(cfg Config) *Tracker {
	t := &Tracker{interval: cfg.Interval, http: cfg.HTTP, logger: cfg.Logger, now: time.Now,
		servers: map[string]*server{}, targets: map[router.Target]*target{}}
	if t.interval <= 0 {
		t.interval = time.Second
	}
	if t.http == nil {
		t.http = &http.Client{Timeout: t.interval, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	for _, s := range cfg.Servers {
		t.servers[s.Name] = &server{Server: s}
	}
	return t
}

// Tracks reports whether provider is a self-hosted server the tracker reads.
func (t *Tracker) Tracks(provider string) bool {
	_, ok := t.servers[provider] // fixed after New
	return ok
}

// Run scrapes every server each interval until ctx ends.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		t.Scrape(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Scrape reads every server once, all at once, and learns from what it read.
func (t *Tracker) Scrape(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range t.servers {
		if s.URL == "" && s.Read == nil {
			continue
		}
		wg.Go(func() {
			sig, err := t.read(ctx, s)
			t.record(s, sig, err)
		})
	}
	wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, s := range t.servers {
		for model := range s.signals {
			t.targetLocked(router.Target{Provider: s.Name, Model: model})
		}
	}
	for tg, st := range t.targets {
		s := t.servers[tg.Provider]
		sig, fresh := t.signalsLocked(s, tg.Model)
		st.inflightAtScrape = st.inflight
		st.learn(now, sig, fresh)
	}
}

func (t *Tracker) read(ctx context.Context, s *server) (map[string]Signals, error) {
	ctx, cancel := context.WithTimeout(ctx, t.interval)
	defer cancel()
	if s.Read != nil {
		return s.Read(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return Parse(s.Kind, io.LimitReader(resp.Body, 8<<20))
}

// record keeps a scrape's result; a server whose metrics stop answering is
// logged once, and once again when they return.
func (t *Tracker) record(s *server, sig map[string]Signals, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if !s.failing {
			s.failing = true
			t.logger.Warn("load metrics unavailable: judging the server by in-flight counts alone",
				"server", s.Name, "url", s.URL, "error", err.Error())
		}
		return
	}
	if s.failing {
		s.failing = false
		t.logger.Info("load metrics answering again", "server", s.Name, "url", s.URL)
	}
	cleaned := false
	for model, v := range sig {
		v, bad := v.sane()
		if bad == "" {
			continue
		}
		if !cleaned { // the map may be the reader's own: copy before changing it
			sig, cleaned = maps.Clone(sig), true
		}
		sig[model] = v
		if !s.insane {
			s.insane = true
			t.logger.Warn("load metrics: dropping readings no server could report (logged once)",
				"server", s.Name, "model", model, "reading", bad)
		}
	}
	s.signals, s.scrapedAt, s.scraped = sig, t.now(), true
}

// signalsLocked is the model's signals (else the server's totals) and
// whether they are fresh.
func (t *Tracker) signalsLocked(s *server, model string) (Signals, bool) {
	if s == nil || !s.scraped || s.failing || t.now().Sub(s.scrapedAt) > 3*t.interval {
		return Signals{}, false
	}
	if sig, ok := s.signals[model]; ok {
		return sig, true
	}
	sig, ok := s.signals[""]
	return sig, ok
}

// targetLocked is tg's state, made on first use; nil: tg is not tracked.
// Its model must be configured, or (on a server that serves any name,
// where clients choose the names) named by the server's metrics: a name a
// client made up would otherwise hold memory, a report row and a metric
// series for good. Beyond the configured ones, a server's targets are
// bounded, as its metrics may name any number of models.
func (t *Tracker) targetLocked(tg router.Target) *target {
	tg.Credential = ""
	if st := t.targets[tg]; st != nil {
		return st
	}
	s := t.servers[tg.Provider]
	if s == nil || tg.Model == "" {
		return nil
	}
	if !slices.Contains(s.Models, tg.Model) {
		if _, reported := s.signals[tg.Model]; s.AnyModel && !reported {
			return nil
		}
		if s.tracked >= maxTargetsPerServer {
			if !s.full {
				s.full = true
				t.logger.Warn("load: too many models on one server; tracking no more of them",
					"server", s.Name, "max", maxTargetsPerServer)
			}
			return nil
		}
		s.tracked++
	}
	st := &target{}
	t.targets[tg] = st
	return st
}

// Load is a target's load now.
type Load struct {
	// Running and Waiting are the server's own counts at its last scrape:
	// the running batch and the queue.
	Running, Waiting int
	// KVCache is the share of the KV cache in use, 0–1; -1: not reported.
	KVCache float64
	// InFlight is tidegate's own calls open on the target now;
	// BatchInFlight those of them that are batch work.
	InFlight, BatchInFlight int
	// Others is the server's running + waiting at its last scrape beyond
	// tidegate's calls in flight then: other clients' work (0 when not fresh).
	Others int
	// Tracked is true when the tracker keeps the target's state; false: a
	// name it does not track (a client's made-up name on a server that
	// serves any), everything else zero.
	Tracked bool
	// Fresh is true when the server's signals are recent; false: the
	// target is judged by InFlight alone (no metrics, or they stopped).
	Fresh     bool
	ScrapedAt time.Time
	// Capacity is the sequences the server runs before it queues, as
	// learned from its signals; 0: not learned yet.
	Capacity int
	// BaseTTFT is the learned time to first token with no queue ahead (0:
	// not learned yet); OnlineTTFT the 90th percentile of online calls'
	// first tokens in the last OnlineWindow, OnlineSeen how many there were.
	BaseTTFT, OnlineTTFT time.Duration
	OnlineSeen           int
}

// OnlineWindow is how far back Load.OnlineTTFT looks.
const OnlineWindow = 3 * time.Second

// Snapshot is tg's load now.
func (t *Tracker) Snapshot(tg router.Target) Load {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snapshotLocked(tg)
}

func (t *Tracker) snapshotLocked(tg router.Target) Load {
	s := t.servers[tg.Provider]
	st := t.targetLocked(tg)
	if st == nil {
		return Load{KVCache: -1}
	}
	sig, fresh := t.signalsLocked(s, tg.Model)
	l := Load{Tracked: true, InFlight: st.inflight, BatchInFlight: st.batchInflight, Fresh: fresh && sig.HasQueue, KVCache: -1,
		Capacity: int(min(st.capacity(), maxCount)), BaseTTFT: st.learnedTTFT()}
	l.OnlineTTFT, l.OnlineSeen = st.recentOnlineTTFT(t.now().Add(-OnlineWindow))
	if s != nil {
		l.ScrapedAt = s.scrapedAt
	}
	if fresh {
		l.Running, l.Waiting = int(sig.Running), int(sig.Waiting)
		l.Others = max(l.Running+l.Waiting-st.inflightAtScrape, 0)
		if sig.HasKV {
			l.KVCache = sig.KVCache
		}
	}
	return l
}

// Forecast predicts what a request sent to tg now would get (see
// target.forecast); a target of a server the tracker does not read is not
// self-hosted.
func (t *Tracker) Forecast(tg router.Target) router.Forecast {
	s := t.servers[tg.Provider]
	if s == nil {
		return router.Forecast{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := router.Forecast{SelfHosted: true, CostPerHour: s.CostPerHour}
	st := t.targetLocked(tg)
	if st == nil {
		return f // an untracked name: nothing learned
	}
	sig, fresh := t.signalsLocked(s, tg.Model)
	f.TTFT, f.Margin = st.forecast(sig, fresh && sig.HasQueue)
	if tps := st.fullTPS; tps > 0 && s.CostPerHour > 0 {
		f.CostPerMTokens = s.CostPerHour / 3600 / tps * 1e6
	}
	return f
}

// Call is one attempt on a target, counted in flight until Done.
type Call struct {
	t      *Tracker
	st     *target
	batch  bool
	sent   time.Time
	wait   time.Duration // the queue wait predicted when it was sent
	ttft   time.Duration // the time to first token predicted when it was sent
	first  time.Duration
	tokens int
	done   bool
}

// Start counts an attempt on tg in flight; batch marks batch work (for the
// token counts by class). A target the tracker does not read or track gets
// a Call that does nothing.
func (t *Tracker) Start(tg router.Target, batch bool) *Call {
	if t == nil || t.servers[tg.Provider] == nil {
		return nil
	}
	tg.Credential = ""
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.targetLocked(tg)
	if st == nil {
		return nil
	}
	sig, fresh := t.signalsLocked(t.servers[tg.Provider], tg.Model)
	c := &Call{t: t, st: st, batch: batch, sent: t.now(), wait: st.predictWait(sig, fresh && sig.HasQueue)}
	st.inflight++
	if batch {
		st.batchStarted++
		st.batchInflight++
	} else {
		st.started++
		if t.servers[tg.Provider].Pooled {
			t.onlineStarted++
		}
	}
	return c
}

// FirstToken marks the call's first token: a time to first token learned
// at the load the call was sent under.
func (c *Call) FirstToken() {
	if c == nil {
		return
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if c.first == 0 {
		c.first = max(c.t.now().Sub(c.sent), time.Nanosecond)
		st := c.st
		st.firstToken(c.first, c.wait)
		if !c.batch {
			st.online[st.onlineN%len(st.online)] = onlineFirst{at: c.t.now(), ttft: c.first}
			st.onlineN++
		}
	}
}

// Tokens records the call's output tokens.
func (c *Call) Tokens(output int) {
	if c == nil || output < 0 {
		return
	}
	c.t.mu.Lock()
	c.tokens = output
	c.t.mu.Unlock()
}

// Done ends the call (once): err nil for an answer, which teaches the
// target's service time and time to first token.
func (c *Call) Done(err error) {
	if c == nil {
		return
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if c.done {
		return
	}
	c.done = true
	st := c.st
	st.inflight--
	if c.batch {
		st.batchInflight--
		st.batchTokens += int64(c.tokens)
	} else {
		st.onlineTokens += int64(c.tokens)
	}
	if err != nil {
		return
	}
	st.observe(c.t.now().Sub(c.sent), c.first, c.tokens, c.wait)
}

// Report is one target's state, for status and metrics.
type Report struct {
	Target      router.Target
	Accelerator string
	Load        Load
	Forecast    router.Forecast
	// TokensPerSecond is the output throughput the target has shown,
	// scaled to a full batch (see target.learn); 0 until shown.
	TokensPerSecond float64
	// DecodeRate is a sequence's output tokens/s after its first token, as
	// learned under the load it was served at; 0 until learned.
	DecodeRate float64
	// Share is the target's share of the API requests' attempts started
	// on the pool's servers since start; batch items are not counted
	// (BatchStarted), as status's requests does not count them.
	Share float64
	// Started counts API requests' attempts; BatchStarted batch items'.
	Started, BatchStarted     int64
	OnlineTokens, BatchTokens int64
}

// Pooled reports whether any server is in the pool.
func (t *Tracker) Pooled() bool {
	if t == nil {
		return false
	}
	for _, s := range t.servers { // fixed after New
		if s.Pooled {
			return true
		}
	}
	return false
}

// Reports lists the pool's configured targets, by name.
func (t *Tracker) Reports() []Report {
	t.mu.Lock()
	tgs := make([]router.Target, 0, len(t.targets))
	for tg, st := range t.targets {
		if s := t.servers[tg.Provider]; s != nil && s.Pooled &&
			(slices.Contains(s.Models, tg.Model) || s.AnyModel && st.started+st.batchStarted > 0) {
			tgs = append(tgs, tg)
		}
	}
	t.mu.Unlock()
	sort.Slice(tgs, func(i, j int) bool { return tgs[i].String() < tgs[j].String() })
	out := make([]Report, 0, len(tgs))
	for _, tg := range tgs {
		f := t.Forecast(tg)
		t.mu.Lock()
		st := t.targets[tg]
		r := Report{Target: tg, Accelerator: t.servers[tg.Provider].Accelerator, Load: t.snapshotLocked(tg), Forecast: f,
			TokensPerSecond: st.fullTPS, DecodeRate: st.decode, Started: st.started, BatchStarted: st.batchStarted, OnlineTokens: st.onlineTokens, BatchTokens: st.batchTokens}
		if t.onlineStarted > 0 {
			r.Share = float64(st.started) / float64(t.onlineStarted)
		}
		t.mu.Unlock()
		out = append(out, r)
	}
	return out
}

// Servers lists the servers read, in name order.
func (t *Tracker) Servers() []Server {
	out := make([]Server, 0, len(t.servers))
	for _, s := range t.servers {
		out = append(out, s.Server)
	}
	slices.SortFunc(out, func(a, b Server) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}
