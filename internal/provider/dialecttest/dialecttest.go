// Package dialecttest holds what the dialects' translation tests share: a
// view of how an error was classified, a stream drain, and a runner for
// tables of upstream error answers.
package dialecttest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// ErrView is what classification decides. Messages are left out: they are
// the redaction tests' business.
type ErrView struct {
	Kind       provider.Kind
	Code       string
	Param      string
	Provider   string
	Status     int
	RetryAfter time.Duration
}

// View is err's classification; nil for no error.
func View(err error) *ErrView {
	if err == nil {
		return nil
	}
	e := provider.AsError(err)
	return &ErrView{e.Kind, e.Code, e.Param, e.Provider, e.Status, e.RetryAfter}
}

// Drain reads a stream to its end. Chunks are copied, Raw included, as
// streams reuse their buffers.
func Drain(s provider.ChatStream) ([]llm.ChatChunk, error) {
	var out []llm.ChatChunk
	for s.Next() {
		c := *s.Chunk()
		c.Raw = append(json.RawMessage(nil), c.Raw...)
		out = append(out, c)
	}
	return out, s.Err()
}

// FailCase is one upstream error answer and the classification it must get;
// Want's Provider and Status are filled in by RunFail.
type FailCase struct {
	Name       string
	Status     int
	RetryAfter string // the Retry-After header, if any
	Body       string
	Want       ErrView
}

// Case builds a FailCase; tables of them read as rows.
func Case(name string, status int, retryAfter, body string, want ErrView) FailCase {
	return FailCase{Name: name, Status: status, RetryAfter: retryAfter, Body: body, Want: want}
}

// RunFail runs a dialect's error mapping over a table of answers.
func RunFail(t *testing.T, name string, fail provider.FailFunc, cases []FailCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			h := http.Header{}
			if tt.RetryAfter != "" {
				h.Set("Retry-After", tt.RetryAfter)
			}
			tt.Want.Provider, tt.Want.Status = name, tt.Status
			if diff := cmp.Diff(&tt.Want, View(fail(tt.Status, h, []byte(tt.Body)))); diff != "" {
				t.Errorf("classification (-want +got):\n%s", diff)
			}
		})
	}
}

// StreamCase is one recorded event stream and what the dialect's stream must
// make of it: its chunks, then its error (nil for a clean end).
type StreamCase struct {
	Name    string
	Events  string
	Want    []llm.ChatChunk
	WantErr *ErrView
}

// RunStream drains the stream open makes of each case's events.
func RunStream(t *testing.T, open func(events string) provider.ChatStream, cases []StreamCase, opts ...cmp.Option) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			got, err := Drain(open(tt.Events))
			if diff := cmp.Diff(tt.Want, got, opts...); diff != "" {
				t.Errorf("chunks (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.WantErr, View(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
