package provider

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind says what went wrong, in terms that decide retry and the client's status.
type Kind int

const (
	KindInternal       Kind = iota // a bug or an unexpected state in tidegate
	KindInvalidRequest             // the client's request is malformed or invalid
	KindUnauthorized               // the client's key is missing or wrong
	KindForbidden                  // the client's key may not do this
	KindNotFound                   // unknown model or route
	KindTooLarge                   // request body over the limit
	KindContextLength              // prompt longer than the model's context
	KindContentFilter              // the provider refused the content
	KindUnsupported                // the target cannot serve this operation
	KindRateLimited                // 429 from the provider
	KindQuotaExceeded              // the provider account is out of credit
	KindUpstreamAuth               // the provider rejected tidegate's credential
	KindOverloaded                 // the provider says it is overloaded (503, 529)
	KindUpstream                   // a provider 5xx or error event
	KindUnavailable                // connection refused, reset, DNS failure
	KindTimeout                    // the provider did not answer in time
	KindBadResponse                // the provider's answer could not be read
	KindCanceled                   // the client went away
)

// kindInfo is the one table from Kind to client status, error types and retry.
type kindInfo struct {
	name          string
	status        int
	openAIType    string
	anthropicType string
	// retryable: another target may succeed where this one failed.
	retryable bool
}

var kinds = [...]kindInfo{
	KindInternal:       {"internal", 500, "server_error", "api_error", false},
	KindInvalidRequest: {"invalid_request", 400, "invalid_request_error", "invalid_request_error", false},
	KindUnauthorized:   {"unauthorized", 401, "authentication_error", "authentication_error", false},
	KindForbidden:      {"forbidden", 403, "permission_error", "permission_error", false},
	KindNotFound:       {"not_found", 404, "invalid_request_error", "not_found_error", false},
	KindTooLarge:       {"too_large", 413, "invalid_request_error", "request_too_large", false},
	KindContextLength:  {"context_length", 400, "invalid_request_error", "invalid_request_error", false},
	KindContentFilter:  {"content_filter", 400, "invalid_request_error", "invalid_request_error", false},
	KindUnsupported:    {"unsupported", 400, "invalid_request_error", "invalid_request_error", true},
	KindRateLimited:    {"rate_limited", 429, "rate_limit_error", "rate_limit_error", true},
	KindQuotaExceeded:  {"quota_exceeded", 429, "insufficient_quota", "rate_limit_error", true},
	KindUpstreamAuth:   {"upstream_auth", 502, "upstream_error", "api_error", true},
	KindOverloaded:     {"overloaded", 503, "server_error", "overloaded_error", true},
	KindUpstream:       {"upstream", 502, "upstream_error", "api_error", true},
	KindUnavailable:    {"unavailable", 502, "upstream_error", "api_error", true},
	KindTimeout:        {"timeout", 504, "timeout_error", "api_error", true},
	KindBadResponse:    {"bad_response", 502, "upstream_error", "api_error", true},
	KindCanceled:       {"canceled", 499, "canceled", "api_error", false},
}

func (k Kind) info() kindInfo {
	if k < 0 || int(k) >= len(kinds) {
		return kinds[KindInternal]
	}
	return kinds[k]
}

func (k Kind) String() string { return k.info().name }

// Status is the HTTP status a client gets for this kind.
func (k Kind) Status() int { return k.info().status }

// OpenAIType is the error.type of OpenAI's error body.
func (k Kind) OpenAIType() string { return k.info().openAIType }

// AnthropicType is the error.type of Anthropic's error body.
func (k Kind) AnthropicType() string { return k.info().anthropicType }

// Retryable reports whether another target may succeed.
func (k Kind) Retryable() bool { return k.info().retryable }

// Error is every failure that reaches a client. Message is safe to show: it
// never holds a credential.
type Error struct {
	Kind     Kind
	Message  string
	Code     string // machine-readable code, e.g. "model_not_found"
	Param    string
	Provider string // the provider that failed, if any
	// Status is the provider's HTTP status, 0 for local errors.
	Status int
	// RetryAfter is when to retry; NoRetry sends no Retry-After at all.
	RetryAfter time.Duration
	Err        error

	quoted []byte // upstream bytes, shown only once scrubbed (see Quote)
}

// NoRetry is a RetryAfter saying that waiting will not help (a spent total
// budget): a 429 without Retry-After rather than a false one.
const NoRetry time.Duration = -1

func (e *Error) Error() string {
	msg := e.Message
	if e.Provider != "" {
		msg = e.Provider + ": " + msg
	}
	if e.Err != nil && e.Message == "" {
		return fmt.Sprintf("%s: %v", e.Kind, e.Err)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error of a kind.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error, classifying foreign errors.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ClassifyTransport(err)
}

// MessageKind guesses a kind from the message or, when there is none, from
// the quoted upstream body (not yet redacted: the guess is not shown).
func (e *Error) MessageKind() (Kind, bool) {
	if e.Message != "" || e.quoted == nil {
		return ClassifyMessage(e.Message)
	}
	return ClassifyMessage(string(e.quoted[:min(len(e.quoted), quoteWindow)]))
}

// KindForStatus maps a provider's HTTP status to a kind, for when its body says nothing better.
func KindForStatus(status int) Kind {
	switch {
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		return KindInvalidRequest
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return KindUpstreamAuth
	case status == http.StatusPaymentRequired:
		return KindQuotaExceeded
	case status == http.StatusNotFound:
		return KindNotFound
	case status == http.StatusRequestTimeout, status == http.StatusGatewayTimeout:
		return KindTimeout
	case status == http.StatusRequestEntityTooLarge:
		return KindTooLarge
	case status == http.StatusFailedDependency: // TGI: generation failed
		return KindUpstream
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status == http.StatusServiceUnavailable, status == 529:
		return KindOverloaded
	case status >= 500:
		return KindUpstream
	case status >= 400:
		return KindInvalidRequest
	}
	return KindBadResponse
}
