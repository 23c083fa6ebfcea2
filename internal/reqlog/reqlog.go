// Package reqlog keeps the request log: every API request's timeline and
// verdict, written to the store in batches off the request path, pruned by
// age. Bodies are kept only when configured, and then with secrets redacted.
package reqlog

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/timing"
)

// ErrNotFound is returned when no request of that id is in the log.
var ErrNotFound = errors.New("reqlog: no such request")

// Row is one request in the log; Record is its JSON timeline, the other
// fields are its indexed summary.
type Row struct {
	ID         string // the gateway's own request id
	ClientID   string // the client's x-request-id, a label lookups also find
	ReceivedAt time.Time
	Endpoint   string
	Model      string
	Route      string
	KeyID      string
	Status     int
	Verdict    string
	Total      time.Duration
	Record     string
}

// Reader reads a logged record.
type Reader interface {
	// RequestLog returns the record of a request id, else the newest
	// labelled with that client id; ErrNotFound if none.
	RequestLog(ctx context.Context, id string) (string, error)
}

// Store is what the log needs of the database.
type Store interface {
	Reader
	// InsertRequestLogs writes a batch; a row already there is kept.
	InsertRequestLogs(ctx context.Context, rows []Row) error
	// PruneRequestLog deletes rows received before a time, saying how many.
	PruneRequestLog(ctx context.Context, before time.Time) (int64, error)
	// PruneRequestLogRows keeps the newest keep rows, saying how many went.
	PruneRequestLogRows(ctx context.Context, keep int64) (int64, error)
}

// Options configure a log.
type Options struct {
	Retention time.Duration // rows older than this are pruned; 0: 7 days
	MaxRows   int64         // past this many rows the oldest are pruned; 0: 1,000,000
	// Secrets are values that must never be stored (the providers' keys,
	// the master key), on top of anything shaped like a credential.
	Secrets func() []string
	// FlushEvery bounds how long a record waits in memory; 0: 100 ms.
	FlushEvery time.Duration
}

// maxPending bounds the records held while the store is slow: past it the
// oldest are dropped (and counted), never the requests themselves.
const maxPending = 20_000

// Log is safe for concurrent use.
type Log struct {
	store  Store
	logger *slog.Logger
	opts   Options

	mu      sync.Mutex
	pending []pending
	writing []pending // the batch being written: still found by Request
	dropped int64
	kick    chan struct{}
	flushMu sync.Mutex // one batch written at a time
}

// New makes a log; Run writes it.
func New(s Store, logger *slog.Logger, opts Options) *Log {
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = 1_000_000
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 100 * time.Millisecond
	}
	return &Log{store: s, logger: logger, opts: opts, kick: make(chan struct{}, 1)}
}

// pending is a record waiting to be written, with the client's own id.
type pending struct {
	rec      *timing.Record
	clientID string
}

// headerRequestID is where a client may send its own id, kept as a label.
const headerRequestID = "x-request-id"

// ObserveRequest queues a finished request's record; the request path pays
// an append, no encoding and no I/O.
func (l *Log) ObserveRequest(_ context.Context, rec *timing.Record, h http.Header) {
	p := pending{rec: rec, clientID: ids.ClientLabel(h.Get(headerRequestID))}
	l.mu.Lock()
	if len(l.pending) >= maxPending {
		l.pending = l.pending[1:]
		l.dropped++
	}
	l.pending = append(l.pending, p)
	full := len(l.pending) >= 512
	l.mu.Unlock()
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// Run writes queued records every FlushEvery and prunes every minute (by
// age and by count, so a busy gateway's disk use stays bounded), until ctx
// ends; then it writes what is left.
func (l *Log) Run(ctx context.Context) {
	tick := time.NewTicker(l.opts.FlushEvery)
	defer tick.Stop()
	l.prune(ctx)
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			l.Flush(context.Background())
			return
		case <-tick.C:
		case <-l.kick:
		}
		l.Flush(ctx)
		if time.Since(lastPrune) > time.Minute {
			l.prune(ctx)
			lastPrune = time.Now()
		}
	}
}

func (l *Log) prune(ctx context.Context) {
	n, err := l.store.PruneRequestLog(ctx, time.Now().Add(-l.opts.Retention))
	if err == nil {
		var m int64
		m, err = l.store.PruneRequestLogRows(ctx, l.opts.MaxRows)
		n += m
	}
	if err != nil && ctx.Err() == nil {
		l.logger.Warn("request log prune failed", slog.String("error", err.Error()))
	} else if n > 0 {
		l.logger.Info("request log pruned", slog.Int64("rows", n))
	}
}

// Flush writes the queued records now. Until the store has them, they
// are still found by Request (a lookup never falls between the two).
func (l *Log) Flush(ctx context.Context) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	batch, dropped := l.pending, l.dropped
	l.pending, l.dropped, l.writing = nil, 0, batch
	l.mu.Unlock()
	if dropped > 0 {
		l.logger.Warn("request log fell behind; records dropped", slog.Int64("dropped", dropped))
	}
	if len(batch) == 0 {
		return
	}
	rows := make([]Row, 0, len(batch))
	for _, p := range batch {
		rows = append(rows, l.row(p))
	}
	if err := l.store.InsertRequestLogs(ctx, rows); err != nil {
		l.logger.Warn("request log write failed", slog.Int("records", len(rows)), slog.String("error", err.Error()))
	}
	l.mu.Lock()
	l.writing = nil
	l.mu.Unlock()
}

func (l *Log) row(p pending) Row {
	rec := p.rec
	cp := *rec
	if cp.RequestBody != "" || cp.ResponseBody != "" {
		var secrets []string
		if l.opts.Secrets != nil {
			secrets = l.opts.Secrets()
		}
		cp.RequestBody = Redact(cp.RequestBody, secrets...)
		cp.ResponseBody = Redact(cp.ResponseBody, secrets...)
	}
	b, _ := json.Marshal(&cp)
	return Row{ID: rec.ID, ClientID: p.clientID, ReceivedAt: rec.Received, Endpoint: rec.Endpoint, Model: rec.Model, Route: rec.Route,
		KeyID: rec.KeyID, Status: rec.Status, Verdict: rec.Verdict.Kind, Total: time.Duration(float64(rec.Phases.Total) * float64(time.Millisecond)),
		Record: string(b)}
}

// Request finds a request's record, still queued or in the store: by the
// gateway's id first, wherever it is, then by the client's label (the newest
// carrying it). A queued record labelled with another request's id must not
// shadow that request once it is written.
func (l *Log) Request(ctx context.Context, id string) (*timing.Record, error) {
	l.mu.Lock()
	var exact, labelled *pending
	// Newest first: the queue, then the batch being written.
	for _, list := range [][]pending{l.pending, l.writing} {
		for i := len(list) - 1; i >= 0 && exact == nil; i-- {
			if list[i].rec.ID == id {
				exact = &list[i]
			} else if labelled == nil && id != "" && list[i].clientID == id {
				labelled = &list[i]
			}
		}
	}
	if exact != nil {
		row := l.row(*exact)
		l.mu.Unlock()
		return decode(row.Record)
	}
	var queued string
	if labelled != nil {
		queued = l.row(*labelled).Record
	}
	l.mu.Unlock()
	s, err := l.store.RequestLog(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	var stored *timing.Record
	if err == nil {
		if stored, err = decode(s); err != nil {
			return nil, err
		}
		if stored.ID == id || queued == "" { // the gateway's id, or the only label match
			return stored, nil
		}
	}
	if queued != "" { // queued records are newer than written ones
		return decode(queued)
	}
	return nil, ErrNotFound
}

// Lookup reads a record straight from a store (the diagnose command).
func Lookup(ctx context.Context, s Reader, id string) (*timing.Record, error) {
	text, err := s.RequestLog(ctx, id)
	if err != nil {
		return nil, err
	}
	return decode(text)
}

func decode(s string) (*timing.Record, error) {
	var rec timing.Record
	if err := json.Unmarshal([]byte(s), &rec); err != nil {
		return nil, errors.Join(errors.New("request log: unreadable record"), err)
	}
	return &rec, nil
}

// Redact removes the given secrets and credential-shaped strings from a
// body bound for the log.
func Redact(s string, secrets ...string) string {
	if s == "" {
		return s
	}
	return provider.Redact(s, secrets...)
}
