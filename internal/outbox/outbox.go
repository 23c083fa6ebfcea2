// Package outbox is a durable local journal of bills not yet in the
// database. Each bill (a "tab") is begun before its upstream call, noted as
// it progresses, and committed once the store holds it; a tab the store
// could not take, or one left by a crashed process, waits in the file until
// a drain settles it.
//
// Durability: every record is one write(2) to an append-only file, so it is
// in the kernel's page cache when the call returns and survives a SIGKILL
// of the process; there is no fsync per record (that would cost the request
// path milliseconds). A background loop fsyncs every SyncInterval, so a
// power loss or kernel crash can lose at most the records written in the
// last SyncInterval: the bills of requests that were in flight then, or
// whose database commit had failed in that window.
//
// The package knows nothing of the ledger: records are opaque JSON values,
// and the drain is a function the caller gives.
package outbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ErrFull is returned by Begin when the outbox holds as many bills, or as
// many bytes, as it may: the caller refuses the request rather than serve it
// without a durable bill.
var ErrFull = errors.New("outbox: full, the database has not taken the waiting bills")

// Options bound and pace an outbox; zero values take the defaults.
type Options struct {
	// MaxPending bounds the bills open at once (in flight or waiting for
	// the database); default 100,000.
	MaxPending int
	// MaxBytes bounds the file; default 256 MiB. Tabs already begun may
	// still append past it, so no admitted request goes unbilled.
	MaxBytes int64
	// SyncInterval is how often the file is fsynced; default 1s.
	SyncInterval time.Duration
	// RetryInterval is the first wait between drains of waiting bills
	// after a failure, doubled up to MaxRetryInterval; default 1s.
	RetryInterval time.Duration
	// MaxRetryInterval caps the wait between drains; default 30s.
	MaxRetryInterval time.Duration
	Now              func() time.Time
}

func (o *Options) defaults() {
	if o.MaxPending <= 0 {
		o.MaxPending = 100_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = time.Second
	}
	if o.MaxRetryInterval < o.RetryInterval {
		o.MaxRetryInterval = max(30*time.Second, o.RetryInterval)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Tab is a bill as the journal holds it.
type Tab struct {
	ID     string
	Opened time.Time
	// Begin is the record Begin wrote (the intent).
	Begin []byte
	// Records are the records Append wrote, in order.
	Records [][]byte
	// Note is the last record Note wrote (the latest progress); nil if none.
	Note []byte
	// Waiting: the tab's owner is gone (it closed without a commit, or its
	// process died), so a drain must settle it.
	Waiting bool
}

// Operations, the second field of a line.
const (
	opBegin  = 'b'
	opAppend = 'a'
	opNote   = 'n'
	opWait   = 'w'
	opCommit = 'c'
)

// Outbox is safe for concurrent use.
type Outbox struct {
	path   string
	opts   Options
	logger *slog.Logger

	mu      sync.Mutex
	f       *os.File
	size    int64
	tabs    map[string]*Tab
	waiting int
	buf     []byte
	dirty   bool // written since the last fsync
	unlock  func()
	// lazy holds commit lines not yet written: they ride on the next write
	// (or the next sync), so a commit costs no syscall of its own.
	lazy []byte
	// compactAt: rewrite the file when it grows past this; rewritten: no
	// tab was committed since the last rewrite (it would not shrink).
	compact, compactAt int64
	rewritten          bool
}

// Open opens (creating it if need be) the outbox at path and reads the bills
// a previous process left: they come back Waiting. A torn last line (a crash
// mid-write, a power loss) is skipped. Only one process may hold a path.
func Open(path string, opts Options, logger *slog.Logger) (*Outbox, error) {
	opts.defaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	unlock, err := lockPath(path + ".lock")
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("outbox: %s is in use by another process: %w", path, err)
	}
	o := &Outbox{path: path, opts: opts, logger: logger, f: f, tabs: map[string]*Tab{}, unlock: unlock,
		compact: min(max(4<<20, opts.MaxBytes/8), opts.MaxBytes/2)}
	if err := o.load(); err != nil {
		unlock()
		f.Close()
		return nil, err
	}
	for _, t := range o.tabs {
		t.Waiting = true
	}
	o.waiting = len(o.tabs)
	// Start from a compact file: what is left is only the waiting bills.
	if err := o.rewrite(); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// load replays the file into o.tabs.
func (o *Outbox) load() error {
	if _, err := o.f.Seek(0, 0); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	sc := bufio.NewScanner(o.f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	bad := 0
	for sc.Scan() {
		op, id, at, data, ok := parseLine(sc.Bytes())
		if !ok {
			bad++
			continue
		}
		o.apply(op, id, at, data)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("outbox: reading %s: %w", o.path, err)
	}
	if bad > 0 {
		o.logger.Warn("outbox: skipped damaged records (a write cut by a crash or a power loss)", "path", o.path, "count", bad)
	}
	return nil
}

// apply updates the in-memory tabs for one record.
func (o *Outbox) apply(op byte, id string, at time.Time, data []byte) {
	t := o.tabs[id]
	switch op {
	case opBegin:
		o.tabs[id] = &Tab{ID: id, Opened: at, Begin: data}
		return
	case opCommit:
		if t != nil && t.Waiting {
			o.waiting--
		}
		delete(o.tabs, id)
		return
	}
	if t == nil {
		return // its begin was lost: nothing to bill it against
	}
	switch op {
	case opAppend:
		t.Records = append(t.Records, data)
	case opNote:
		t.Note = data
	case opWait:
		if !t.Waiting {
			t.Waiting = true
			o.waiting++
		}
	}
}

// line frames a record: crc32 (hex) of the rest, op, id, time (µs), data.
// Ids and JSON data hold no space or newline where it matters: ids are
// checked, and JSON escapes newlines.
func (o *Outbox) line(op byte, id string, at time.Time, data []byte) []byte {
	b := append(o.buf[:0], "00000000 "...)
	b = append(b, op, ' ')
	b = append(b, id...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, at.UnixMicro(), 10)
	b = append(b, ' ')
	b = append(b, data...)
	sum := crc32.ChecksumIEEE(b[9:])
	const hex = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		b[i] = hex[sum&0xf]
		sum >>= 4
	}
	b = append(b, '\n')
	o.buf = b
	return b
}

func parseLine(l []byte) (op byte, id string, at time.Time, data []byte, ok bool) {
	if len(l) < 13 || l[8] != ' ' || l[10] != ' ' {
		return 0, "", time.Time{}, nil, false
	}
	sum, err := strconv.ParseUint(string(l[:8]), 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(l[9:]) {
		return 0, "", time.Time{}, nil, false
	}
	op, rest := l[9], l[11:]
	fields := [2][]byte{}
	for i := range fields {
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return 0, "", time.Time{}, nil, false
		}
		fields[i], rest = rest[:sp], rest[sp+1:]
	}
	us, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return 0, "", time.Time{}, nil, false
	}
	return op, string(fields[0]), time.UnixMicro(us), append([]byte(nil), rest...), true
}

func validID(id string) bool {
	if id == "" || len(id) > 200 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// write appends one record; the caller holds o.mu.
func (o *Outbox) write(op byte, id string, data []byte) error {
	if o.f == nil {
		return errors.New("outbox: closed")
	}
	at := o.opts.Now()
	b := o.line(op, id, at, data)
	if len(o.lazy) > 0 {
		b = append(o.lazy, b...)
		o.lazy = o.lazy[:0]
	}
	n, err := o.f.Write(b)
	o.size += int64(n)
	o.dirty = true
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	o.apply(op, id, at, data)
	return nil
}

// flushLazy writes the commit lines waiting for a ride; the caller holds o.mu.
func (o *Outbox) flushLazy() error {
	if len(o.lazy) == 0 || o.f == nil {
		return nil
	}
	n, err := o.f.Write(o.lazy)
	o.size += int64(n)
	o.dirty = true
	o.lazy = o.lazy[:0]
	return err
}

// Begin opens a tab with its intent, durably (against a process crash)
// when it returns. ErrFull past the bounds.
func (o *Outbox) Begin(id string, intent []byte) error {
	if !validID(id) {
		return fmt.Errorf("outbox: bad tab id %q", id)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.tabs) >= o.opts.MaxPending {
		return ErrFull
	}
	if o.size >= max(o.compact, o.compactAt) || o.size >= o.opts.MaxBytes && !o.rewritten {
		if err := o.rewrite(); err != nil {
			return err
		}
		o.compactAt = 2 * o.size // a file of open tabs is not rewritten again until it doubles
	}
	if o.size >= o.opts.MaxBytes {
		return ErrFull
	}
	if _, dup := o.tabs[id]; dup {
		return fmt.Errorf("outbox: tab %s already open", id)
	}
	return o.write(opBegin, id, intent)
}

// Append adds a record to an open tab.
func (o *Outbox) Append(id string, record []byte) error { return o.add(opAppend, id, record) }

// Note replaces the tab's note (its latest progress).
func (o *Outbox) Note(id string, note []byte) error { return o.add(opNote, id, note) }

// Wait hands a tab to the drain: its owner closed it but could not commit.
func (o *Outbox) Wait(id string) error { return o.add(opWait, id, nil) }

// Commit forgets a tab: the database holds its bill. The commit of a tab
// with records is written with the next record or sync, not on its own: a
// crash that loses it only replays a bill the store takes once (its
// records are idempotent). A tab with no records is committed at once, as
// its replay would bill its intent.
func (o *Outbox) Commit(id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.tabs[id]
	if !ok {
		return fmt.Errorf("outbox: no open tab %s", id)
	}
	o.rewritten = false
	if len(t.Records) == 0 {
		return o.write(opCommit, id, nil)
	}
	at := o.opts.Now()
	o.lazy = append(o.lazy, o.line(opCommit, id, at, nil)...)
	o.apply(opCommit, id, at, nil)
	return nil
}

func (o *Outbox) add(op byte, id string, data []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.tabs[id]; !ok {
		return fmt.Errorf("outbox: no open tab %s", id)
	}
	return o.write(op, id, data)
}

// Stats says how many tabs wait for the database and how old the oldest is.
func (o *Outbox) Stats() (waiting int, oldest time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.opts.Now()
	for _, t := range o.tabs {
		if t.Waiting {
			oldest = max(oldest, now.Sub(t.Opened))
		}
	}
	return o.waiting, oldest
}

// Waiting returns copies of the tabs waiting for a drain, oldest first.
func (o *Outbox) Waiting() []Tab {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Tab
	for _, t := range o.tabs {
		if t.Waiting {
			c := *t
			c.Records = append([][]byte(nil), t.Records...)
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Tab) int { return a.Opened.Compare(b.Opened) })
	return out
}

// Drain settles every waiting tab through settle, oldest first, and commits
// each one settle took; it stops at the first failure (the database is
// likely still away) and returns it.
func (o *Outbox) Drain(ctx context.Context, settle func(context.Context, Tab) error) (int, error) {
	n := 0
	for _, t := range o.Waiting() {
		if err := settle(ctx, t); err != nil {
			return n, err
		}
		if err := o.Commit(t.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Run fsyncs the file every SyncInterval and drains waiting tabs, retrying
// with backoff while the database refuses them, until ctx ends; then it
// syncs a last time.
func (o *Outbox) Run(ctx context.Context, settle func(context.Context, Tab) error) {
	sync := time.NewTicker(o.opts.SyncInterval)
	defer sync.Stop()
	wait := o.opts.RetryInterval
	next := time.Now()
	for {
		if !time.Now().Before(next) {
			n, err := o.Drain(ctx, settle)
			if n > 0 {
				o.logger.Info("outbox: bills written to the ledger", "count", n)
			}
			if err != nil && ctx.Err() == nil {
				o.logger.Warn("outbox: the ledger is still unavailable; bills wait", "retry_in", wait.String(), "error", err)
				next = time.Now().Add(wait)
				wait = min(wait*2, o.opts.MaxRetryInterval)
			} else {
				next, wait = time.Now().Add(o.opts.RetryInterval), o.opts.RetryInterval
			}
		}
		select {
		case <-ctx.Done():
			_ = o.Sync()
			return
		case <-sync.C:
			if err := o.Sync(); err != nil {
				o.logger.Error("outbox: fsync failed", "error", err)
			}
		}
	}
}

// Sync makes every record written so far durable against a power loss.
func (o *Outbox) Sync() error {
	o.mu.Lock()
	lazyErr := o.flushLazy()
	f, dirty := o.f, o.dirty
	o.dirty = false
	o.mu.Unlock()
	if lazyErr != nil {
		return fmt.Errorf("outbox: %w", lazyErr)
	}
	if f == nil || !dirty {
		return nil
	}
	// Outside the lock: writers go on while the disk works. A rewrite
	// swapping the file meanwhile fsyncs the new one itself.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// rewrite replaces the file by one holding only the open tabs, fsynced and
// renamed into place; the caller holds o.mu (or is Open).
func (o *Outbox) rewrite() error {
	tmp := o.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	var size int64
	emit := func(op byte, id string, at time.Time, data []byte) {
		n, _ := w.Write(o.line(op, id, at, data))
		size += int64(n)
	}
	for _, t := range o.tabs {
		emit(opBegin, t.ID, t.Opened, t.Begin)
		for _, r := range t.Records {
			emit(opAppend, t.ID, t.Opened, r)
		}
		if t.Note != nil {
			emit(opNote, t.ID, t.Opened, t.Note)
		}
		if t.Waiting {
			emit(opWait, t.ID, t.Opened, nil)
		}
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, o.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("outbox: compacting: %w", err)
	}
	syncDir(filepath.Dir(o.path))
	o.f.Close()
	// Lazy commits are moot: their tabs are not in the new file.
	o.f, o.size, o.dirty, o.lazy, o.rewritten = f, size, false, o.lazy[:0], true
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Close syncs and closes the file; waiting tabs stay in it for the next start.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.flushLazy()
	if serr := o.f.Sync(); err == nil {
		err = serr
	}
	o.unlock()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f = nil
	return err
}
