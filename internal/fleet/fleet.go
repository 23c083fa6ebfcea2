// Package fleet builds the configured providers: the one place that knows
// every dialect package.
package fleet

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/h1"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/anthropic"
	"github.com/tidegate/tidegate/internal/provider/gemini"
	"github.com/tidegate/tidegate/internal/provider/openai"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// HTTPClient is the upstream client for one provider. There is no overall
// timeout (streams run long); the response-header timeout bounds the wait
// for an answer to start, and the request context bounds the rest. Redirects
// are never followed: the credential and the prompt go to the configured URL only.
//
// Cleartext upstreams (self-hosted servers, the sim) are served by h1, which
// reads each answer in the goroutine that asked: net/http's Transport would
// keep two more goroutines per open stream (stacks for 1,000 open streams:
// 27.7 MB with them, 20.0 MB without) and hand every request between them. TLS upstreams and proxied
// requests keep net/http's Transport, where HTTP/2 multiplexes streams.
//
// A stream holds its connection for its whole life: with fewer idle
// connections kept than streams run at once to one host, every stream past
// the cap would dial anew (9% of a relay's CPU at 600 open streams to one
// HTTP/1.1 upstream). The fallback's write buffer only carries a request's
// head (a body larger than it goes straight to the socket) and its read
// buffer a few stream chunks (the SSE reader above keeps its own line
// buffer): 1 KiB each instead of 4 saves 6 KiB per open stream.
func HTTPClient(headerTimeout time.Duration) *http.Client {
	dial := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	fallback := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   2048,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       1 << 10,
		ReadBufferSize:        1 << 10,
	}
	return &http.Client{CheckRedirect: provider.RefuseRedirect, Transport: &h1.Transport{
		Fallback:              fallback,
		Proxy:                 http.ProxyFromEnvironment,
		Dial:                  dial,
		ResponseHeaderTimeout: headerTimeout,
		MaxIdlePerHost:        2048,
		ReadBufferSize:        1 << 10,
	}}
}

// Build creates every configured provider, by name; a provider with
// several credentials gets one client each, named "name#i" (see Credentials).
func Build(cfgs []config.Provider) (map[string]provider.Provider, error) {
	out := make(map[string]provider.Provider, len(cfgs))
	for _, c := range cfgs {
		keys := Credentials(c)
		if len(keys) == 0 {
			p, err := build(c)
			if err != nil {
				return nil, fmt.Errorf("provider %s: %w", c.Name, err)
			}
			out[c.Name] = p
			continue
		}
		for i, k := range keys {
			one := c
			one.APIKey = k
			p, err := build(one)
			if err != nil {
				return nil, fmt.Errorf("provider %s: %w", c.Name, err)
			}
			out[c.Name+"#"+strconv.Itoa(i)] = p
		}
	}
	return out, nil
}

// Credentials lists a provider's keys when it has a list of them
// (api_keys, after api_key if both are set); nil when it has a single key.
func Credentials(c config.Provider) []string {
	if len(c.APIKeys) == 0 {
		return nil
	}
	if c.APIKey == "" {
		return c.APIKeys
	}
	return append([]string{c.APIKey}, c.APIKeys...)
}

// CredentialIDs are the ids the router uses for a provider's credentials:
// their positions, never the secrets.
func CredentialIDs(c config.Provider) []string {
	var ids []string
	for i := range Credentials(c) {
		ids = append(ids, strconv.Itoa(i))
	}
	return ids
}

func build(c config.Provider) (provider.Provider, error) {
	switch c.Type {
	case "sim":
		var seed uint64
		var models []sim.Model
		if c.Sim != nil {
			seed, models = c.Sim.Seed, c.Sim.Models
		}
		f := sim.New(c.Name, seed, models)
		if c.Sim != nil && c.Sim.Tasks != "" {
			ts, err := simTasks(c.Sim.Tasks)
			if err != nil {
				return nil, fmt.Errorf("provider %s: sim.tasks: %w", c.Name, err)
			}
			f.SetTasks(ts)
		}
		return f, nil
	case "anthropic":
		return &anthropic.Client{Name: c.Name, BaseURL: c.BaseURL, APIKey: c.APIKey, HTTP: HTTPClient(c.Timeout)}, nil
	case "gemini":
		return &gemini.Client{Name: c.Name, BaseURL: c.BaseURL, APIKey: c.APIKey, HTTP: HTTPClient(c.Timeout)}, nil
	}
	preset, ok := provider.LookupPreset(c.Type)
	if !ok {
		return nil, fmt.Errorf("unknown type %q", c.Type)
	}
	return &openai.Client{Name: c.Name, Preset: preset, BaseURL: c.BaseURL, APIKey: c.APIKey, HTTP: HTTPClient(c.Timeout)}, nil
}

// simTasks reads a suite file as the tasks a sim fleet knows.
func simTasks(path string) ([]sim.Task, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := eval.Parse(path, data, eval.Options{})
	if err != nil {
		return nil, err
	}
	s := &eval.Suite{Name: "tasks", Grader: eval.GraderSpec{Type: eval.TypeExact}, Items: p.Items}
	if err := eval.Validate(s, p.Lines); err != nil {
		return nil, err
	}
	return sim.TasksOf(s), nil
}
