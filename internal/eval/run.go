package eval

import (
	"errors"
	"time"
)

// Run statuses.
const (
	RunRunning = "running"
	RunDone    = "done"
	RunFailed  = "failed"
)

// Where a run was started: an API-started run is resumed by the server on
// start; a CLI-started one by running the CLI again with its id.
const (
	OriginCLI = "cli"
	OriginAPI = "api"
)

// Ledger purposes: eval spend is tagged apart from traffic, and a judge's
// apart from the candidates'.
const (
	PurposeEval  = "eval"
	PurposeJudge = "eval_judge"
)

var (
	// ErrRunNotFound: no run of that id (for that suite).
	ErrRunNotFound = errors.New("eval: no such run")
	// ErrLeased: another process holds the run's lease.
	ErrLeased = errors.New("eval: the run is being worked by another process")
)

// Run is a suite run over candidate models, a row in the store; its
// results are rows keyed by (run, item, model), each written once.
type Run struct {
	ID          string    `json:"id"`
	Suite       string    `json:"suite"`
	SuiteID     string    `json:"suite_id"`
	Models      []string  `json:"models"` // provider/model
	Concurrency int       `json:"concurrency"`
	Origin      string    `json:"origin"`
	Status      string    `json:"status"`
	Error       string    `json:"error,omitempty"`
	Items       int       `json:"items"` // items in the suite when the run was made
	CreatedAt   time.Time `json:"created_at"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
}

// RunResult is one item×model: the answer's grade, the request that was
// billed for it (its cost is the ledger's), and how long it took.
type RunResult struct {
	RunID     string        `json:"-"`
	ItemID    string        `json:"item"`
	Model     string        `json:"model"`
	RequestID string        `json:"request_id"`
	Score     float64       `json:"score"`
	Answer    string        `json:"answer,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Error     string        `json:"error,omitempty"` // the call or the grading failed: scored 0
	Latency   time.Duration `json:"-"`
	// From the ledger, when read back: the candidate's and the judge's cost.
	CostMicros      int64     `json:"cost_micros"`
	JudgeCostMicros int64     `json:"judge_cost_micros,omitempty"`
	Currency        string    `json:"currency,omitempty"`
	CreatedAt       time.Time `json:"-"`
	JudgeLabel      string    `json:"judge_label,omitempty"`
}
