package provider

import (
	"regexp"
	"strings"
)

// keyLike matches strings shaped like API keys and bearer tokens, masked or not
// ("sk-abc***xyz", "Bearer eyJ…", "bce-v3/ALTAK-…").
var keyLike = regexp.MustCompile(`(?i)(sk-|tg-|bce-v3/|bearer\s+)[A-Za-z0-9*._/+=-]{4,}`)

// credentialLike matches other common credentials: Google and AWS keys,
// GitHub and Slack tokens, JWTs, and the value of a field named like a
// secret ("api_key": "…", password=…).
var credentialLike = regexp.MustCompile(`AIza[0-9A-Za-z_-]{20,}|AKIA[0-9A-Z]{12,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|(?i)(api[_-]?key|secret|password|passwd|token)(\\?"?\s*[:=]\s*\\?"?)[^\s",}\\]{6,}`)

// Redact removes the given secrets and anything shaped like a credential
// from a text that may reach a client, a log or the request log (provider
// error messages echo keys; prompts carry them).
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	if strings.ContainsAny(s, "-") || strings.Contains(strings.ToLower(s), "bearer") {
		s = keyLike.ReplaceAllString(s, "[redacted]")
	}
	return credentialLike.ReplaceAllString(s, "$1$2[redacted]")
}
