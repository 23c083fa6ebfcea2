package httpapi

import (
	"slices"
	"strings"
)

// checkCredentialProvider refuses a credential no provider would use: for a
// provider that does not exist, or one not configured with
// stored_credentials: true, it would sit in the store doing nothing.
func (s *Server) checkCredentialProvider(name string) error {
	if slices.Contains(s.StoredCredentialProviders, name) {
		return nil
	}
	if len(s.StoredCredentialProviders) == 0 {
		return invalid("provider", "no provider takes stored credentials: set stored_credentials: true on one in the config")
	}
	return invalid("provider", "provider %q does not take stored credentials (those that do: %s)", name, strings.Join(s.StoredCredentialProviders, ", "))
}
