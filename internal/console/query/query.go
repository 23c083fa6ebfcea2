// Package query holds the console's reads of storage: their filters, their rows
// and the interface the store implements. No I/O; the store must not import
// the console's HTTP code, so these live apart.
package query

import (
	"context"
	"time"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/keys"
)

// RequestFilter selects request log rows, newest first. Keys, when not
// nil, limits the rows to those keys (a project's session); an empty,
// non-nil list matches nothing.
type RequestFilter struct {
	Keys    []string
	KeyID   string
	Model   string
	Status  int // 0: any
	Verdict string
	From    time.Time // inclusive; zero: any
	To      time.Time // exclusive; zero: any
	// Before is the keyset cursor: rows older than (BeforeAt, BeforeID).
	BeforeAt time.Time
	BeforeID string
	Limit    int
}

// RequestRow is a request log row without its record.
type RequestRow struct {
	ID         string
	ClientID   string
	ReceivedAt time.Time
	Endpoint   string
	Model      string
	Route      string
	KeyID      string
	Status     int
	Verdict    string
	Total      time.Duration
}

// Traffic counts the request log since a time, per verdict.
type Traffic struct {
	Requests int64
	Errors   int64 // status ≥ 400
	Verdicts map[string]int64
}

// SpendFilter selects ledger sums; ProjectID "" is every project.
type SpendFilter struct {
	GroupBy   string // key | project | model | day
	ProjectID string
	From, To  time.Time
}

// SpendRow is one group of the ledger, per currency and price entry.
type SpendRow struct {
	Group            string
	Currency         string
	PriceRef         string
	Requests         int64
	PromptTokens     int64
	CompletionTokens int64
	Cost             int64 // micro-units
}

// Store is what the console reads from storage beyond the admin API.
type Store interface {
	// RequestLog is a logged record (JSON) by request id or client label.
	RequestLog(ctx context.Context, id string) (string, error)
	ConsoleRequests(ctx context.Context, f RequestFilter) ([]RequestRow, error)
	// ConsoleTraffic counts requests since from; keys as in RequestFilter.
	ConsoleTraffic(ctx context.Context, keys []string, from time.Time) (Traffic, error)
	ConsoleSpend(ctx context.Context, f SpendFilter) ([]SpendRow, error)
	// ListKeys names the ids a spend report groups by.
	ListKeys(ctx context.Context) ([]keys.Key, error)
	Suites(ctx context.Context) ([]eval.Summary, error)
	EvalRuns(ctx context.Context, suite string) ([]eval.Run, error)
	EvalRun(ctx context.Context, id string) (*eval.Run, error)
	RunResults(ctx context.Context, runID string) ([]eval.RunResult, error)
}
