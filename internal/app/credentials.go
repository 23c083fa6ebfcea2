package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/secrets"
)

// credentialSource reads the stored credentials, opened with the sealer.
type credentialSource interface {
	Credentials(ctx context.Context, sl *secrets.Sealer, provider string) ([]secrets.Credential, error)
}

// credentials keeps the providers with stored_credentials on the keys the
// store holds: a key added or deleted through the admin API is in (or out
// of) plans at once on this replica, and within a reload period on others.
type credentials struct {
	base   []config.Provider // as configured, before stored keys
	st     credentialSource
	sealer *secrets.Sealer
	gw     *gateway.Gateway
	rt     *router.Router
	logger *slog.Logger

	mu      sync.Mutex
	current []config.Provider // with the stored keys in use
}

// newCredentials starts from the providers as configured; load then adds
// the stored keys.
func newCredentials(base []config.Provider, st credentialSource, sealer *secrets.Sealer, logger *slog.Logger) *credentials {
	return &credentials{base: cloneProviders(base), st: st, sealer: sealer, logger: logger}
}

// load reads the stored keys at start and returns the providers with them.
// A provider without any key yet starts all the same (its first key is
// added through this gateway's own admin API) and answers 503 until then.
func (c *credentials) load(ctx context.Context) ([]config.Provider, error) {
	ps, err := c.withStored(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if lacksCredential(p) {
			c.logger.Warn("provider has no credential yet; its requests answer 503 until one is added with POST /admin/credentials", "provider", p.Name)
		}
	}
	c.current = ps
	return cloneProviders(ps), nil
}

// lacksCredential: a provider meant to use stored keys has none (never
// stored, or the last one deleted). It must not call its upstream with
// no Authorization at all.
func lacksCredential(p config.Provider) bool {
	return p.StoredCredentials && p.APIKey == "" && len(p.APIKeys) == 0
}

// build creates the providers' clients; a provider without a credential
// gets one that refuses every call, saying why.
func build(ps []config.Provider) (map[string]provider.Provider, error) {
	built, err := fleet.Build(ps)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if lacksCredential(p) {
			built[p.Name] = noCredential(p.Name)
		}
	}
	return built, nil
}

// noCredential is a provider whose stored credentials are missing.
type noCredential string

func (n noCredential) err() error {
	return &provider.Error{Kind: provider.KindOverloaded, Code: "no_credentials", Provider: string(n),
		Message: "no credential is stored for this provider; add one with POST /admin/credentials"}
}

func (n noCredential) ChatCompletion(context.Context, *llm.ChatRequest) (*llm.ChatResponse, error) {
	return nil, n.err()
}

func (n noCredential) ChatCompletionStream(context.Context, *llm.ChatRequest) (provider.ChatStream, error) {
	return nil, n.err()
}

func (n noCredential) Embeddings(context.Context, *llm.EmbeddingRequest) (*llm.EmbeddingResponse, error) {
	return nil, n.err()
}

func (n noCredential) ImageGeneration(context.Context, *llm.ImageRequest) (*llm.ImageResponse, error) {
	return nil, n.err()
}

// StoredCredentialProviders names the providers that take stored keys.
func StoredCredentialProviders(ps []config.Provider) []string {
	var out []string
	for _, p := range ps {
		if p.StoredCredentials {
			out = append(out, p.Name)
		}
	}
	return out
}

func cloneProviders(ps []config.Provider) []config.Provider {
	out := make([]config.Provider, len(ps))
	for i, p := range ps {
		p.APIKeys = slices.Clone(p.APIKeys)
		out[i] = p
	}
	return out
}

// withStored returns the configured providers with their stored keys added.
func (c *credentials) withStored(ctx context.Context) ([]config.Provider, error) {
	ps := cloneProviders(c.base)
	for i := range ps {
		p := &ps[i]
		if !p.StoredCredentials {
			continue
		}
		if c.sealer == nil {
			return nil, fmt.Errorf("providers[%d].stored_credentials: set %s to open stored credentials", i, SecretKeyEnv)
		}
		creds, err := c.st.Credentials(ctx, c.sealer, p.Name)
		if err != nil {
			return nil, fmt.Errorf("providers[%d].stored_credentials: %w", i, err)
		}
		for _, cr := range creds {
			p.APIKeys = append(p.APIKeys, cr.Secret)
		}
	}
	return ps, nil
}

// Providers are the providers with the keys in use.
func (c *credentials) Providers() []config.Provider {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Targets lists every provider × credential × model in use.
func (c *credentials) Targets() []router.Target { return configuredTargets(c.Providers()) }

// Reload re-reads the stored keys and, for each provider whose keys
// changed, builds new clients and a new credential set for the router.
// Health is reset for a provider whose keys changed other than by a key
// added at the end: positions would otherwise name other keys.
func (c *credentials) Reload(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next, err := c.withStored(ctx)
	if err != nil {
		return err
	}
	var changed []config.Provider
	for i, p := range next {
		old := c.current[i]
		if slices.Equal(fleet.Credentials(old), fleet.Credentials(p)) && old.APIKey == p.APIKey {
			continue
		}
		changed = append(changed, p)
		if before := fleet.Credentials(old); len(before) > len(fleet.Credentials(p)) || !slices.Equal(before, fleet.Credentials(p)[:len(before)]) {
			c.gw.Health.Forget(p.Name)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	built, err := build(changed)
	if err != nil {
		return err
	}
	providers := map[string]provider.Provider{}
	for key, p := range c.gw.CurrentProviders() {
		name, _, _ := strings.Cut(key, "#")
		if !slices.ContainsFunc(changed, func(cp config.Provider) bool { return cp.Name == name }) {
			providers[key] = p
		}
	}
	for key, p := range built {
		providers[key] = p
	}
	ids := map[string][]string{}
	for _, p := range next {
		if cs := fleet.CredentialIDs(p); len(cs) > 0 {
			ids[p.Name] = cs
		}
	}
	c.gw.SetProviders(providers)
	c.rt.SetCredentials(ids)
	c.current = next
	for _, p := range changed {
		c.logger.Info("provider credentials reloaded", "provider", p.Name, "credentials", len(fleet.Credentials(p)))
	}
	return nil
}

// Run reloads every period until ctx ends, so replicas pick up keys added
// through another replica.
func (c *credentials) Run(ctx context.Context, period time.Duration, changed <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed: // stored on some replica: reread now
		}
		if err := c.Reload(ctx); err != nil && ctx.Err() == nil {
			c.logger.Warn("stored credentials not reloaded", "error", provider.Redact(err.Error()))
		}
	}
}
