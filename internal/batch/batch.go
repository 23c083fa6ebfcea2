// Package batch is OpenAI's Batch API behind tidegate: the files and
// batches it keeps, the checks an input file passes line by line, the
// output and error lines, and the executor that runs each item as a job
// (River) through the gateway's own call path.
package batch

import (
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is a file, batch or item that does not exist (or is not the
// caller's to see).
var ErrNotFound = errors.New("batch: not found")

// Purposes of files.
const (
	PurposeBatch       = "batch"        // an input file
	PurposeBatchOutput = "batch_output" // an output or error file
)

// Endpoints a batch may target.
const (
	EndpointChat       = "/v1/chat/completions"
	EndpointEmbeddings = "/v1/embeddings"
)

// Endpoints lists the endpoints a batch may target.
var Endpoints = []string{EndpointChat, EndpointEmbeddings}

// Window is the one completion_window OpenAI accepts.
const Window = "24h"

// File is an uploaded or produced file. Its bytes live in Storage under its ID.
type File struct {
	ID        string // file-…
	ProjectID string // "" for the master key
	KeyID     string
	Purpose   string
	Filename  string
	Bytes     int64
	CreatedAt time.Time
	Status    string // "processed" once stored
}

// Status is a batch's place in OpenAI's lifecycle.
type Status string

const (
	Validating Status = "validating"
	InProgress Status = "in_progress"
	Finalizing Status = "finalizing"
	Completed  Status = "completed"
	Failed     Status = "failed"
	Expired    Status = "expired"
	Cancelling Status = "cancelling"
	Cancelled  Status = "cancelled"
)

// Terminal reports a status no batch leaves.
func (s Status) Terminal() bool {
	return s == Completed || s == Failed || s == Expired || s == Cancelled
}

// Batch is a batch as stored; its request counts come from its items.
type Batch struct {
	ID               string // batch_…
	ProjectID        string
	KeyID            string
	Models           []string // the creating key's allowlist; empty: any model
	Endpoint         string
	InputFileID      string
	OutputFileID     string
	ErrorFileID      string
	CompletionWindow string
	Metadata         map[string]string
	Status           Status
	Errors           []LineError // why validation failed
	Counts           Counts
	CreatedAt        time.Time
	InProgressAt     time.Time
	FinalizingAt     time.Time
	CompletedAt      time.Time
	FailedAt         time.Time
	ExpiredAt        time.Time
	CancellingAt     time.Time
	CancelledAt      time.Time
	ExpiresAt        time.Time
}

// Counts are a batch's request counts; Running and Pending are tidegate's
// own (OpenAI reports total, completed and failed).
type Counts struct {
	Total, Completed, Failed, Running, Pending int64
}

// Open reports items not yet answered.
func (c Counts) Open() int64 { return c.Pending + c.Running }

// Item states.
const (
	ItemPending = "pending"
	ItemRunning = "running"
	ItemDone    = "done"
)

// Item is one line of a batch's input file, and once done its result.
type Item struct {
	BatchID  string
	Line     int // 1-based line of the input file
	CustomID string
	Body     json.RawMessage
	State    string
	Attempts int
	Result   *Result // nil until done
}

// Result is an item's answer, written once: an HTTP status and body (the
// upstream's answer or tidegate's error), or an error without a response
// (expired, cancelled, failed validation).
type Result struct {
	RequestID  string
	StatusCode int             // 0: no response
	Body       json.RawMessage // the response body when StatusCode > 0
	ErrCode    string          // set when there was no response
	ErrMessage string
}

// OK reports a successful answer (it goes to the output file).
func (r *Result) OK() bool { return r.StatusCode >= 200 && r.StatusCode < 300 }

// LineError is one problem of an input file, naming its line.
type LineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	Line    int    `json:"line,omitempty"`
	// CustomID is the line's custom_id when it could be read.
	CustomID string `json:"-"`
}

func (e *LineError) Error() string { return e.Message }

// ListQuery pages a list, newest first.
type ListQuery struct {
	ProjectID string
	All       bool   // the master key: every project's
	Purpose   string // files only; "" any
	After     string // the id the previous page ended with
	Limit     int
}

// Update moves a batch to a status, stamping its time, with what the move
// produced.
type Update struct {
	Status       Status
	At           time.Time
	OutputFileID string
	ErrorFileID  string
	Errors       []LineError // nil: unchanged
}
