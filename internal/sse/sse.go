// Package sse reads and writes server-sent events as LLM providers use them.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// MaxLine bounds one line; larger events (a runaway upstream) fail the stream
// instead of growing memory without limit.
const MaxLine = 8 << 20

// ErrLineTooLong reports an event line over MaxLine.
var ErrLineTooLong = errors.New("sse: line too long")

// Event is one dispatched event.
type Event struct {
	Name string // the "event:" field; empty for plain data events
	Data []byte // data lines joined by "\n"; valid until the next call to Next
}

// Reader pulls events. It skips comments (": keep-alive") and blank lines
// between events, and accepts "data:" with or without the space (Hunyuan).
type Reader struct {
	br    *bufio.Reader
	event Event
	data  bytes.Buffer
	long  []byte // a line longer than the buffer, assembled
	err   error
}

func NewReader(r io.Reader) *Reader {
	// 512 bytes hold a typical event line (200–400 bytes) and are what an
	// open stream keeps here; longer lines are assembled in line(). The body
	// it reads has a buffer of its own (the HTTP client's, which takes a
	// whole chunk in one read), so this one costs a copy, not syscalls.
	return &Reader{br: bufio.NewReaderSize(r, 512)}
}

// Buffered reports whether bytes of a next event are already in memory, so
// a relay can hold its flush until the burst is written.
func (r *Reader) Buffered() bool { return r.br.Buffered() > 0 }

// line returns the next line without its ending, or an error (io.EOF at the end).
func (r *Reader) line() ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.long = append(r.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(r.long) > MaxLine {
				return nil, ErrLineTooLong
			}
			b, err = r.br.ReadSlice('\n')
			r.long = append(r.long, b...)
		}
		if len(r.long) > MaxLine {
			return nil, ErrLineTooLong
		}
		b = r.long
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(b) > 0) {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r")), nil
}

// Next reads the next event; false at the end of the stream or on error.
func (r *Reader) Next() bool {
	r.event = Event{}
	r.data.Reset()
	hasData := false
	for {
		line, err := r.line()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.err = err
				return false
			}
			if hasData { // a last event without its blank line
				r.event.Data = r.data.Bytes()
				return true
			}
			return false
		}
		if len(line) == 0 {
			if hasData {
				r.event.Data = r.data.Bytes()
				return true
			}
			r.event.Name = ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "data":
			if hasData {
				r.data.WriteByte('\n')
			}
			r.data.Write(value)
			hasData = true
		case "event":
			r.event.Name = string(value)
		}
	}
}

func (r *Reader) Event() Event { return r.event }

// Err is the read error that ended the stream, nil at a clean EOF.
func (r *Reader) Err() error { return r.err }

// Drain reads what is left of a finished stream (the chunked encoding's end)
// so the connection can be reused; it stops after a few KiB.
func Drain(body io.Reader) {
	_, _ = io.CopyN(io.Discard, body, 4<<10)
}
