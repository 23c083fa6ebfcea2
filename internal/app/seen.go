package app

import (
	"context"
	"net/http"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

// maxSeenTargets bounds the targets learnt at run time: their model names
// come from clients.
const maxSeenTargets = 256

// seenTargets learns the targets of providers without a models list (the
// recommended self-hosted setup) from the attempts that succeeded, so that
// status and metrics report them instead of leaving them out.
type seenTargets struct {
	seen  *router.Seen
	creds *credentials
}

func newSeenTargets(creds *credentials) *seenTargets {
	var open []string
	for _, p := range creds.Providers() {
		if len(p.Models) == 0 {
			open = append(open, p.Name)
		}
	}
	return &seenTargets{seen: router.NewSeen(open, maxSeenTargets), creds: creds}
}

// ObserveRequest learns the targets that answered: a model that answered
// exists upstream, where a failed name may be a client's typo.
func (s *seenTargets) ObserveRequest(_ context.Context, rec *timing.Record, _ http.Header) {
	for i := range rec.Attempts {
		if a := &rec.Attempts[i]; a.Error == "" {
			if t, ok := router.ParseTarget(a.Target); ok {
				s.seen.Add(t)
			}
		}
	}
}

// Has reports whether a provider/model name was learnt.
func (s *seenTargets) Has(name string) bool { return s.seen.Has(name) }

// all lists the configured targets and the learnt ones, each per credential.
func (s *seenTargets) all() []router.Target {
	ps := s.creds.Providers()
	out := configuredTargets(ps)
	byName := map[string]config.Provider{}
	for _, p := range ps {
		byName[p.Name] = p
	}
	for _, t := range s.seen.Targets() {
		ids := fleet.CredentialIDs(byName[t.Provider])
		if len(ids) == 0 {
			ids = []string{""}
		}
		for _, c := range ids {
			out = append(out, router.Target{Provider: t.Provider, Model: t.Model, Credential: c})
		}
	}
	return out
}
