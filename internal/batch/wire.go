package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// FileObject is OpenAI's File object.
type FileObject struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
	ExpiresAt *int64 `json:"expires_at"`
	// StatusDetails is deprecated by OpenAI but still in its schema.
	StatusDetails *string `json:"status_details"`
}

// Object renders f in OpenAI's shape.
func (f *File) Object() FileObject {
	return FileObject{ID: f.ID, Object: "file", Bytes: f.Bytes, CreatedAt: f.CreatedAt.Unix(), Filename: f.Filename,
		Purpose: f.Purpose, Status: f.Status}
}

// BatchObject is OpenAI's Batch object.
type BatchObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Errors           *ErrorsObject     `json:"errors,omitempty"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           Status            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    RequestCounts     `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
}

// ErrorsObject lists why a batch failed validation.
type ErrorsObject struct {
	Object string      `json:"object"`
	Data   []LineError `json:"data"`
}

// RequestCounts is OpenAI's request_counts.
type RequestCounts struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
}

func unix(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.Unix()
	return &v
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Object renders b in OpenAI's shape.
func (b *Batch) Object() BatchObject {
	o := BatchObject{ID: b.ID, Object: "batch", Endpoint: b.Endpoint, InputFileID: b.InputFileID, CompletionWindow: b.CompletionWindow,
		Status: b.Status, OutputFileID: optional(b.OutputFileID), ErrorFileID: optional(b.ErrorFileID), CreatedAt: b.CreatedAt.Unix(),
		InProgressAt: unix(b.InProgressAt), ExpiresAt: unix(b.ExpiresAt), FinalizingAt: unix(b.FinalizingAt),
		CompletedAt: unix(b.CompletedAt), FailedAt: unix(b.FailedAt), ExpiredAt: unix(b.ExpiredAt),
		CancellingAt: unix(b.CancellingAt), CancelledAt: unix(b.CancelledAt),
		RequestCounts: RequestCounts{Total: b.Counts.Total, Completed: b.Counts.Completed, Failed: b.Counts.Failed},
		Metadata:      b.Metadata}
	if len(b.Errors) > 0 {
		o.Errors = &ErrorsObject{Object: "list", Data: b.Errors}
	}
	return o
}

// OutputLine is one line of an output or error file, OpenAI's format.
type OutputLine struct {
	ID       string          `json:"id"`
	CustomID string          `json:"custom_id"`
	Response *OutputResponse `json:"response"`
	Error    *OutputError    `json:"error"`
}

// OutputResponse is an answered request in an output line.
type OutputResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// OutputError is a request that got no response.
type OutputError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// LineID is an item's stable id in the output: the same line always gets
// the same id, so a rewritten output file is the same file.
func LineID(batchID string, line int) string {
	sum := sha256.Sum256([]byte(batchID + ":" + strconv.Itoa(line)))
	return "batch_req_" + hex.EncodeToString(sum[:12])
}

// OutputLine renders a done item's line.
func (it *Item) OutputLine() OutputLine {
	l := OutputLine{ID: LineID(it.BatchID, it.Line), CustomID: it.CustomID}
	r := it.Result
	if r == nil {
		return l
	}
	if r.StatusCode > 0 {
		l.Response = &OutputResponse{StatusCode: r.StatusCode, RequestID: r.RequestID, Body: r.Body}
	} else {
		l.Error = &OutputError{Code: r.ErrCode, Message: r.ErrMessage}
	}
	return l
}
