package provider

import (
	"regexp"
	"strings"
)

// keyLike matches strings shaped like API keys and bearer tokens, masked or not
// ("sk-abc***xyz", "Bearer eyJ…", "bce-v3/ALTAK-…").
var keyLike = regexp.MustCompile(`(?i)(sk-|tg-|bce-v3/|bearer\s+)[A-Za-z0-9*._/+=-]{4,}`)

// Redact removes the given secrets and anything shaped like a key from a text
// that may reach a client or a log (provider error messages echo keys).
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	if strings.ContainsAny(s, "-") || strings.Contains(strings.ToLower(s), "bearer") {
		s = keyLike.ReplaceAllString(s, "[redacted]")
	}
	return s
}
