package ledger

import (
	"context"
	"time"
)

// Budget limits spending of a key or a project in one currency per period.
type Budget struct {
	ID       string
	Scope    string // ScopeKey | ScopeProject
	ScopeID  string
	Currency string
	Amount   int64 // micro-units
	Period   string
	Soft     bool
}

// Budget scopes and periods.
const (
	ScopeKey     = "key"
	ScopeProject = "project"
	PeriodDay    = "day"
	PeriodMonth  = "month"
	PeriodTotal  = "total"
)

// PeriodStart is the start of the budget window holding t, in UTC, in
// microseconds; 0 for a total budget, whose one window never ends.
func PeriodStart(period string, t time.Time) int64 {
	t = t.UTC()
	switch period {
	case PeriodDay:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).UnixMicro()
	case PeriodMonth:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	}
	return 0
}

// Window is a budget's state in one period.
type Window struct {
	Spent, Reserved int64
}

// Hold is part of a reservation: an amount held against one budget window.
// The JSON names are the stored form of a reservation's holds.
type Hold struct {
	BudgetID    string `json:"budget_id"`
	PeriodStart int64  `json:"period_start"`
	Amount      int64  `json:"amount"`
	Soft        bool   `json:"soft,omitempty"`
}

// Reservation holds a request's worst-case cost until it is settled.
type Reservation struct {
	ID        string
	Holds     []Hold
	ExpiresAt time.Time
	// Local: the holds live in memory (LocalHolds), so there is no row to
	// delete at settlement and spending counts only with fresh records.
	Local bool
}

// BudgetExceededError is returned by Reserve when a hard budget cannot hold
// the amount: the window as it was when it refused, and the amount wanted.
type BudgetExceededError struct {
	BudgetID                string
	Amount, Spent, Reserved int64 // the budget and its window
	Want                    int64 // the hold that did not fit
}

func (e *BudgetExceededError) Error() string { return "ledger: budget " + e.BudgetID + " exceeded" }

// Entry is one ledger record: an upstream attempt that consumed tokens.
type Entry struct {
	RequestID        string // the gateway's own id: with Attempt, the record's key
	ClientRequestID  string // the client's x-request-id, a label to search by
	Purpose          string // "" for traffic; eval spend is tagged (eval.Purpose…)
	Attempt          int
	CreatedAt        time.Time
	KeyID            string
	ProjectID        string
	Provider         string
	Model            string
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	CacheWriteTokens int64
	ReasoningTokens  int64
	Images           int64  // images generated, billed per image
	Flags            string // usage the upstream reported that could not be true, clamped: see sanitize
	Cost             int64  // micro-units of Currency
	Currency         string
	Priced           bool
	Estimated        bool
	Status           string // ok | error | canceled
	Latency          time.Duration
	PriceRef         string
}

// ReportRow is one group of a usage report.
type ReportRow struct {
	Group            string
	Currency         string
	Requests         int64
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	Cost             int64
	Unpriced         int64
	Estimated        int64
}

// HoldStore is the database side of budget holds.
type HoldStore interface {
	// Reserve takes every hold atomically, or none and returns
	// *BudgetExceededError naming the first hard budget that could not hold.
	Reserve(ctx context.Context, r *Reservation) error
	// Settle releases the holds, spends actual[i] against Holds[i] and
	// writes the entries, in one transaction, at most once.
	Settle(ctx context.Context, r *Reservation, actual []int64, entries []Entry) error
	// BudgetWindow reads a window; zero if it has none yet.
	BudgetWindow(ctx context.Context, budgetID string, periodStart int64) (Window, error)
}

// Store is what a Meter needs of the database.
type Store interface {
	HoldStore
	// Budgets returns the budgets that apply to a key and its project, the key's first.
	Budgets(ctx context.Context, keyID, projectID string) ([]Budget, error)
	// RecordUsage writes entries outside any reservation (a key without budgets).
	RecordUsage(ctx context.Context, entries []Entry) error
	// ReleaseExpired returns to their budgets the holds of reservations
	// expired by now, and says how many it released.
	ReleaseExpired(ctx context.Context, now time.Time) (int, error)
}
