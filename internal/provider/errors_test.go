package provider

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestKindTable(t *testing.T) {
	for k := KindInternal; k <= KindCanceled; k++ {
		if k.String() == "" || k.Status() == 0 || k.OpenAIType() == "" || k.AnthropicType() == "" {
			t.Errorf("kind %d has no row", k)
		}
	}
	if Kind(999).Status() != 500 {
		t.Error("an unknown kind must map to internal")
	}
	for _, k := range []Kind{KindRateLimited, KindOverloaded, KindUpstream, KindUnavailable, KindTimeout} {
		if !k.Retryable() {
			t.Errorf("%s must be retryable", k)
		}
	}
	for _, k := range []Kind{KindInvalidRequest, KindContentFilter, KindUnauthorized, KindContextLength} {
		if k.Retryable() {
			t.Errorf("%s must not be retryable", k)
		}
	}
}

func TestClassifyTransport(t *testing.T) {
	cases := map[error]Kind{
		context.Canceled:                             KindCanceled,
		context.DeadlineExceeded:                     KindTimeout,
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED): KindUnavailable,
		fmt.Errorf("read: %w", syscall.ECONNRESET):   KindUnavailable,
	}
	for err, want := range cases {
		if got := ClassifyTransport(err).Kind; got != want {
			t.Errorf("%v → %s, want %s", err, got, want)
		}
	}
}

func TestClassifyCode(t *testing.T) {
	for code, want := range map[string]Kind{
		"1302": KindRateLimited, "RateLimitExceeded.EndpointTPMExceeded": KindRateLimited,
		"OutputTextRiskDetection": KindContentFilter, "context_length_exceeded": KindContextLength,
		"Throttling.User": KindRateLimited, "overloaded_error": KindOverloaded,
	} {
		if got, ok := ClassifyCode(code); !ok || got != want {
			t.Errorf("%s → %s, want %s", code, got, want)
		}
	}
	if _, ok := ClassifyCode("something_new"); ok {
		t.Error("an unknown code was classified")
	}
}

// TestRetryAfter: both forms are read, and whatever an upstream sends, a
// target is cooled for at most MaxRetryAfter (never negative, never forever).
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"3", 3 * time.Second},
		{" 1.5 ", 1500 * time.Millisecond},
		{date(10 * time.Second), 10 * time.Second},
		{"", 0},
		{"soon", 0},
		{"-5", 0},
		{"NaN", 0},
		{"0", 0},
		{date(-time.Hour), 0},
		{"299", 299 * time.Second},
		{"300", MaxRetryAfter},
		{"999999999", MaxRetryAfter},
		{"1e300", MaxRetryAfter},
		{"1e400", MaxRetryAfter},
		{"+Inf", MaxRetryAfter},
		{"9223372036854775807", MaxRetryAfter},
		{date(32 * 365 * 24 * time.Hour), MaxRetryAfter},
		{"Fri, 31 Dec 9999 23:59:59 GMT", MaxRetryAfter},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Retry-After", tt.header)
		}
		if got := RetryAfter(h, now); got != tt.want {
			t.Errorf("Retry-After %q → %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestRedact(t *testing.T) {
	in := "Incorrect API key provided: sk-proj-Ab12****cd34; header Bearer eyJhbGciOi.x; key tg-abc123def; mine=MYSECRETKEY"
	out := Redact(in, "MYSECRETKEY")
	for _, leak := range []string{"Ab12", "eyJhbG", "abc123", "MYSECRET"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q survived: %s", leak, out)
		}
	}
	if !strings.Contains(out, "Incorrect API key provided") {
		t.Errorf("the message itself was lost: %s", out)
	}
}

// TestRedactCredentialShapes: the shapes of common credentials go, the
// names around them and ordinary words stay.
func TestRedactCredentialShapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"api_key": "plain-secret-value-xyz"}`, `{"api_key": "[redacted]"}`},
		{`{\"api_key\":\"abcdefghij\"}`, `{\"api_key\":\"[redacted]\"}`},
		{`password=hunter2hunter`, `password=[redacted]`},
		{`tok ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 x`, `tok [redacted] x`},
		{`AIzaSyA1234567890abcdefghijklmnopqrstuv`, `[redacted]`},
		{`AKIAABCDEFGHIJKLMNOP`, `[redacted]`},
		{`eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig`, `[redacted]`},
		{`plain text about tokens and keys`, `plain text about tokens and keys`},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
