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
	sc    *bufio.Scanner
	event Event
	data  bytes.Buffer
	err   error
}

func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLine)
	return &Reader{sc: sc}
}

// Next reads the next event; false at the end of the stream or on error.
func (r *Reader) Next() bool {
	r.event = Event{}
	r.data.Reset()
	hasData := false
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
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
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = ErrLineTooLong
		}
		r.err = err
		return false
	}
	if hasData { // a last event without its blank line
		r.event.Data = r.data.Bytes()
		return true
	}
	return false
}

func (r *Reader) Event() Event { return r.event }

// Err is the read error that ended the stream, nil at a clean EOF.
func (r *Reader) Err() error { return r.err }
