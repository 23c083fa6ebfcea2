package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits says where keys' rpm, tpm and max_streams are counted: in Redis
// when URL is set, else in PostgreSQL when the store is, else (SQLite) in
// this process. It reads as a bare URL (`limits: redis://…`) or as a mapping.
type Limits struct {
	// URL is redis://[user:pass@]host:port/db (rediss:// for TLS).
	URL string `yaml:"url"`
	// Unavailable is what a replica does while Redis does not answer:
	// divide (default: count on its own, each limit divided by the
	// replicas last seen alive), open (admit all) or closed (refuse, 503).
	Unavailable string `yaml:"unavailable"`
	// Timeout bounds each call to Redis or PostgreSQL; default 200ms.
	Timeout time.Duration `yaml:"timeout"`
	// LeaseTTL is how long a dead replica's stream slots stay taken; default 30s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// Window is what rpm and tpm count over; default 1m. Shorter windows
	// are for tests: "rpm" then means requests per window.
	Window time.Duration `yaml:"window"`
	// Prefix starts every Redis key; default "tidegate:".
	Prefix string `yaml:"prefix"`
}

var limitsFields = []string{"url", "unavailable", "timeout", "lease_ttl", "window", "prefix"}

// UnmarshalYAML reads a bare URL or a mapping, rejecting unknown fields
// (a custom decoder does not inherit KnownFields).
func (l *Limits) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&l.URL)
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; !slices.Contains(limitsFields, k) {
				return fmt.Errorf("line %d: field %s not found in limits (want one of %s)", n.Content[i].Line, k, strings.Join(limitsFields, ", "))
			}
		}
	}
	type plain Limits
	return n.Decode((*plain)(l))
}

func (l *Limits) applyDefaults() {
	if l.Unavailable == "" {
		l.Unavailable = "divide"
	}
	if l.Timeout == 0 {
		l.Timeout = 200 * time.Millisecond
	}
	if l.LeaseTTL == 0 {
		l.LeaseTTL = 30 * time.Second
	}
	if l.Window == 0 {
		l.Window = time.Minute
	}
	if l.Prefix == "" {
		l.Prefix = "tidegate:"
	}
}

func (l *Limits) validate() []error {
	var errs []error
	if l.URL != "" && !strings.HasPrefix(l.URL, "redis://") && !strings.HasPrefix(l.URL, "rediss://") {
		errs = append(errs, fmt.Errorf("want redis://host:port/db or rediss://…, got a URL of another scheme"))
	}
	if !slices.Contains([]string{"divide", "open", "closed"}, l.Unavailable) {
		errs = append(errs, fmt.Errorf("unavailable: want divide, open or closed, got %q", l.Unavailable))
	}
	if l.Timeout < time.Millisecond || l.Timeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("timeout: want 1ms to 10s, got %v", l.Timeout))
	}
	if l.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("lease_ttl: want at least 1s, got %v", l.LeaseTTL))
	}
	if l.Window < time.Second || l.Window > time.Hour {
		errs = append(errs, fmt.Errorf("window: want 1s to 1h, got %v", l.Window))
	}
	return errs
}
