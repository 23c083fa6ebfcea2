package provider

import (
	"errors"
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

// minSecretPart is the shortest part of a compound key ("id.secret",
// "bce-v3/AK/SK") redacted on its own: shorter parts are not secret enough
// to be worth blanking ordinary words for.
const minSecretPart = 8

// Redact removes the given secrets and anything shaped like a credential
// from a text that may reach a client, a log or the request log (provider
// error messages echo keys; prompts carry them). A secret is removed by
// value, also JSON-escaped, and so is each long part of a compound key: keys
// shaped like nothing (Ark's UUIDs, Zhipu's id.secret) have only their value.
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) < 4 {
			continue
		}
		s = strings.ReplaceAll(s, sec, "[redacted]")
		if strings.Contains(sec, "/") {
			s = strings.ReplaceAll(s, strings.ReplaceAll(sec, "/", `\/`), "[redacted]")
		}
		if strings.ContainsAny(sec, "./:") {
			for _, part := range strings.FieldsFunc(sec, func(r rune) bool { return r == '.' || r == '/' || r == ':' }) {
				if len(part) >= minSecretPart {
					s = strings.ReplaceAll(s, part, "[redacted]")
				}
			}
		}
	}
	if strings.ContainsAny(s, "-") || strings.Contains(strings.ToLower(s), "bearer") {
		s = keyLike.ReplaceAllString(s, "[redacted]")
	}
	return credentialLike.ReplaceAllString(s, "$1$2[redacted]")
}

// quoteWindow is how much of a quoted upstream body is redacted before it is
// shortened to a snippet: past the snippet's length by more than any key, so
// a key that straddles the cut is removed whole, never left half-shown.
const quoteWindow = snippetLen + 4096

// Quote keeps upstream bytes to show (shortened) after the message. They are
// shown only once Scrub has redacted them: an error that was never scrubbed
// shows none of them.
func (e *Error) Quote(body []byte) *Error {
	e.quoted = body
	return e
}

// Scrub is the one redaction point for errors that hold an upstream's bytes:
// every dialect client passes each error it returns through it, with its own
// credential. The message, code and param (what a client or a log sees) lose
// the secrets and anything shaped like a credential, and a quoted body is
// redacted whole before it is shortened into the message. Idempotent.
func Scrub(err error, secrets ...string) error {
	var e *Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	e.Message = Redact(e.Message, secrets...)
	e.Code = Redact(e.Code, secrets...)
	e.Param = Redact(e.Param, secrets...)
	if e.quoted != nil {
		q := e.quoted[:min(len(e.quoted), quoteWindow)]
		shown := snippet(Redact(string(q), secrets...), len(e.quoted) > len(q))
		e.quoted = nil
		switch {
		case shown == "":
		case e.Message == "":
			e.Message = shown
		default:
			e.Message += ": " + shown
		}
	}
	return err
}

// Guard scrubs a dialect method's returned error; deferred, it covers every
// return path: defer provider.Guard(&err, c.APIKey).
func Guard(err *error, secrets ...string) {
	Scrub(*err, secrets...)
}
