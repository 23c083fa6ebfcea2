package provider

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/timing"
)

// MaxResponseBody bounds a non-streaming upstream answer held in memory.
const MaxResponseBody = 64 << 20

// Post sends a JSON body. A transport failure comes back classified; an HTTP
// error status comes back as a response for the dialect to read its body.
func Post(ctx context.Context, client *http.Client, url string, header http.Header, body []byte) (*http.Response, error) {
	return send(ctx, client, url, header, "application/json", bytes.NewReader(body), int64(len(body)))
}

// send posts a body of a content type; length is its size, or -1 when
// unknown. A body that is not in memory is streamed as it is read.
func send(ctx context.Context, client *http.Client, url string, header http.Header, contentType string, body io.Reader, length int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return nil, &Error{Kind: KindInternal, Message: "bad upstream URL", Err: err}
	}
	if _, inMemory := body.(*bytes.Reader); !inMemory {
		req.ContentLength = length
	}
	req.Header = header
	req.Header.Set("Content-Type", contentType)
	attempt := timing.AttemptFrom(ctx)
	if attempt != nil {
		req = req.WithContext(httptrace.WithClientTrace(ctx, attempt.Trace()))
		if tp := attempt.Traceparent(); tp != "" {
			req.Header.Set("traceparent", tp) // the upstream's spans join the request's trace
		}
	}
	if client.CheckRedirect == nil {
		// The default would follow: refuse, whoever built the client.
		c := *client
		c.CheckRedirect = RefuseRedirect
		client = &c
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, ClassifyTransport(err)
	}
	if attempt != nil {
		attempt.Processing(processingTime(resp.Header))
	}
	return resp, nil
}

// processingTime is the time an upstream says it spent on a request:
// OpenAI's openai-processing-ms (also sent by tidegate's sim).
func processingTime(h http.Header) time.Duration {
	v := h.Get("openai-processing-ms")
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}

// RefuseRedirect is the CheckRedirect of every upstream client: a redirect is
// returned as the answer, never followed, since following it would carry the
// provider's credential and the prompt to wherever the upstream points.
func RefuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// FailFunc turns an upstream error answer into an *Error, dialect by dialect.
type FailFunc func(status int, h http.Header, body []byte) *Error

// Call posts a JSON body; a transport failure is classified and tagged with
// the provider, and a non-2xx answer is read and handed to fail.
func Call(ctx context.Context, client *http.Client, name, url string, header http.Header, body []byte, fail FailFunc) (*http.Response, error) {
	return CallBody(ctx, client, name, url, header, "application/json", bytes.NewReader(body), int64(len(body)), fail)
}

// CallBody is Call for a body of any content type, streamed as it is read
// (a multipart upload); length is its size, or -1 when unknown.
func CallBody(ctx context.Context, client *http.Client, name, url string, header http.Header, contentType string, body io.Reader, length int64, fail FailFunc) (*http.Response, error) {
	resp, err := send(ctx, client, url, header, contentType, body, length)
	if err != nil {
		AsError(err).Provider = name
		return nil, err
	}
	if resp.StatusCode/100 == 3 {
		resp.Body.Close()
		// Neither the body nor Location is quoted: they are the upstream's bytes.
		return nil, &Error{Kind: KindBadResponse, Provider: name, Status: resp.StatusCode,
			Message: "upstream answered with a redirect, which tidegate does not follow"}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, rerr := ReadBody(resp)
		if rerr != nil {
			return nil, rerr
		}
		return nil, fail(resp.StatusCode, resp.Header, b)
	}
	return resp, nil
}

// ReadBody reads a whole upstream body, bounded by MaxResponseBody.
func ReadBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil {
		return nil, ClassifyTransport(err)
	}
	if len(b) > MaxResponseBody {
		return nil, &Error{Kind: KindBadResponse, Message: fmt.Sprintf("upstream answer over %d bytes", MaxResponseBody)}
	}
	return b, nil
}

// BadResponse reports an upstream answer that could not be read.
func BadResponse(format string, args ...any) *Error {
	return &Error{Kind: KindBadResponse, Message: fmt.Sprintf(format, args...)}
}

// snippetLen bounds the upstream bytes quoted in an error message.
const snippetLen = 200

// snippet shortens an upstream body for an error message; cut tells that the
// body was already longer than s.
func snippet(s string, cut bool) string {
	s = strings.TrimSpace(s)
	if len(s) > snippetLen {
		s, cut = strings.ToValidUTF8(s[:snippetLen], ""), true
	}
	if cut {
		s += "…"
	}
	return s
}
