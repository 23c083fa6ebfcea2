package router

import (
	"slices"
	"sync"
)

// Seen keeps the targets of providers that list no models (they serve any
// name) as they answer, so status and metrics can show them. It is bounded:
// the names come from clients, so only the first max are kept.
type Seen struct {
	open map[string]bool // providers without a models list
	max  int

	mu      sync.RWMutex
	names   map[string]bool
	targets []Target
}

// NewSeen tracks the given open providers, up to max targets in all.
func NewSeen(openProviders []string, max int) *Seen {
	s := &Seen{open: map[string]bool{}, max: max, names: map[string]bool{}}
	for _, p := range openProviders {
		s.open[p] = true
	}
	return s
}

// Add notes a target that answered; it reports whether the target is kept.
func (s *Seen) Add(t Target) bool {
	if !s.open[t.Provider] {
		return false
	}
	name := Target{Provider: t.Provider, Model: t.Model}.String()
	s.mu.RLock()
	known, full := s.names[name], len(s.targets) >= s.max
	s.mu.RUnlock()
	if known || full {
		return known
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.names[name] && len(s.targets) < s.max {
		s.names[name] = true
		s.targets = append(s.targets, Target{Provider: t.Provider, Model: t.Model})
	}
	return s.names[name]
}

// Has reports whether provider/model is kept.
func (s *Seen) Has(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.names[name]
}

// Targets lists the kept targets (provider/model, no credential), oldest first.
func (s *Seen) Targets() []Target {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.targets)
}
