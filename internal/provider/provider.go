// Package provider defines what a model provider offers tidegate, the errors
// every dialect reports, and the presets of OpenAI-compatible vendors.
package provider

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
)

// Provider answers chat completions. req.Model is the provider's own model name.
type Provider interface {
	ChatCompletion(ctx context.Context, req *llm.ChatRequest) (*llm.ChatResponse, error)
	// ChatCompletionStream opens a stream; an error here means no chunk was produced.
	ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (ChatStream, error)
}

// ChatStream is pulled like bufio.Scanner: Next until false, then Err; Close always.
type ChatStream interface {
	Next() bool
	Chunk() *llm.ChatChunk
	Err() error
	Close() error
}

// BufferedStream is implemented by streams that can tell whether their next
// chunk is already in memory; a relay then writes it before flushing.
type BufferedStream interface {
	Buffered() bool
}

// Embedder is implemented by providers that serve embeddings.
type Embedder interface {
	Embeddings(ctx context.Context, req *llm.EmbeddingRequest) (*llm.EmbeddingResponse, error)
}

// ImageGenerator is implemented by providers that generate images.
type ImageGenerator interface {
	ImageGeneration(ctx context.Context, req *llm.ImageRequest) (*llm.ImageResponse, error)
}

// ClassifyTransport turns an error from the HTTP client or the context into an *Error.
func ClassifyTransport(err error) *Error {
	if err == nil {
		return nil
	}
	e := &Error{Kind: KindUpstream, Message: "upstream request failed", Err: err}
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		e.Kind, e.Message = KindCanceled, "request canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		e.Kind, e.Message = KindTimeout, "upstream timed out"
	case errors.As(err, &netErr) && netErr.Timeout():
		e.Kind, e.Message = KindTimeout, "upstream timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Kind, e.Message = KindUnavailable, "upstream refused the connection"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		e.Kind, e.Message = KindUnavailable, "upstream closed the connection"
	default:
		var dnsErr *net.DNSError
		var opErr *net.OpError
		if errors.As(err, &dnsErr) || errors.As(err, &opErr) {
			e.Kind, e.Message = KindUnavailable, "upstream unreachable"
		}
	}
	return e
}

// MaxRetryAfter caps an upstream's Retry-After: a target is cooled for at
// most this long whatever the upstream says, so a hostile or broken upstream
// cannot take itself (or a shared credential) out of plans for years.
const MaxRetryAfter = 5 * time.Minute

// RetryAfter reads a Retry-After header (seconds or an HTTP date), capped at
// MaxRetryAfter; 0 when absent, negative, in the past or unreadable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// Compared before converting: a huge or infinite float has no Duration.
		switch {
		case !(secs > 0): // negative, zero or NaN
			return 0
		case secs >= MaxRetryAfter.Seconds():
			return MaxRetryAfter
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}

// vendorCodes classifies the error codes and types vendors put in their bodies
// (providers.md §1.3). Codes rarely collide across vendors, so one table serves all.
var vendorCodes = map[string]Kind{
	// context too long
	"context_length_exceeded": KindContextLength, "tokens_too_long": KindContextLength,
	"exceed_context_size_error": KindContextLength, "1261": KindContextLength,
	"characters_too_long": KindContextLength,
	// content filter
	"content_filter": KindContentFilter, "data_inspection_failed": KindContentFilter,
	"DataInspectionFailed": KindContentFilter, "1301": KindContentFilter,
	"InputTextRiskDetection": KindContentFilter, "InputImageRiskDetection": KindContentFilter,
	"OutputTextRiskDetection": KindContentFilter, "SensitiveContentDetected": KindContentFilter,
	"InputTextSensitiveContentDetected": KindContentFilter, "unsafe_request": KindContentFilter,
	"1026": KindContentFilter, "1027": KindContentFilter,
	// quota and billing
	"insufficient_quota": KindQuotaExceeded, "credit_balance_exhausted": KindQuotaExceeded,
	"Arrearage": KindQuotaExceeded, "PrepaidBillOverdue": KindQuotaExceeded,
	"PostpaidBillOverdue": KindQuotaExceeded, "1113": KindQuotaExceeded,
	"AccountOverdueError": KindQuotaExceeded, "exceeded_current_quota_error": KindQuotaExceeded,
	"1008": KindQuotaExceeded, "billing_error": KindQuotaExceeded, "QuotaExceeded": KindQuotaExceeded,
	// rate limits
	"rate_limit_exceeded": KindRateLimited, "rate_limit_error": KindRateLimited,
	"rpm_rate_limit_exceeded": KindRateLimited, "tpm_rate_limit_exceeded": KindRateLimited,
	"rate_limit_reached_error": KindRateLimited, "1302": KindRateLimited, "1303": KindRateLimited,
	"1305": KindRateLimited, "1002": KindRateLimited, "1039": KindRateLimited,
	"Throttling": KindRateLimited, "Throttling.RateQuota": KindRateLimited,
	"Throttling.AllocationQuota": KindRateLimited, "LimitRequests": KindRateLimited,
	"RequestBurstTooFast": KindRateLimited, "slow_down": KindRateLimited,
	"RequestLimitExceeded": KindRateLimited, "LimitExceeded": KindRateLimited,
	"OperationDenied": KindContentFilter, // Hunyuan: OperationDenied.TextIllegalDetected
	// overload
	"overloaded_error": KindOverloaded, "engine_overloaded_error": KindOverloaded,
	"ServerOverloaded": KindOverloaded, "ModelUnavailable": KindOverloaded, "1312": KindOverloaded,
	"ModelLoadingError": KindOverloaded, "overloaded": KindOverloaded, "unavailable_error": KindOverloaded,
	// credentials
	"invalid_api_key": KindUpstreamAuth, "InvalidApiKey": KindUpstreamAuth,
	"AuthenticationError": KindUpstreamAuth, "invalid_authentication_error": KindUpstreamAuth,
	"incorrect_api_key_error": KindUpstreamAuth, "authentication_error": KindUpstreamAuth,
	"1004": KindUpstreamAuth, "1001": KindTimeout, "1024": KindUpstream, "1033": KindUpstream,
	// not found
	"model_not_found": KindNotFound, "ModelNotFound": KindNotFound,
	"InvalidEndpointOrModel.NotFound": KindNotFound, "not_found_error": KindNotFound,
}

// ClassifyCode returns the kind for a vendor's error code or type, if known.
// Dotted codes fall back to their prefix ("RateLimitExceeded.EndpointRPMExceeded").
func ClassifyCode(code string) (Kind, bool) {
	if code == "" {
		return 0, false
	}
	if k, ok := vendorCodes[code]; ok {
		return k, true
	}
	prefix, _, dotted := strings.Cut(code, ".")
	if dotted {
		if k, ok := vendorCodes[prefix]; ok {
			return k, true
		}
	}
	switch {
	case strings.Contains(code, "RateLimitExceeded"), strings.HasPrefix(code, "Throttling"):
		return KindRateLimited, true
	case strings.HasSuffix(code, "RiskDetection"):
		return KindContentFilter, true
	}
	return 0, false
}

// ClassifyMessage guesses a kind from the text of an error when codes are absent.
func ClassifyMessage(msg string) (Kind, bool) {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "maximum context length"), strings.Contains(m, "context length"),
		strings.Contains(m, "prompt is too long"), strings.Contains(m, "input token length too long"),
		strings.Contains(m, "exceeded model token limit"), strings.Contains(m, "exceeds the available context"),
		strings.Contains(m, "tokens + `max_new_tokens` must be"), strings.Contains(m, "exceeds the maximum number of tokens"):
		return KindContextLength, true
	case strings.Contains(m, "overloaded"):
		return KindOverloaded, true
	}
	return 0, false
}
