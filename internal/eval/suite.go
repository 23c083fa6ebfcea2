// Package eval holds eval suites and their graders: what a suite is, how
// one is read from the files teams already have (native JSONL, promptfoo,
// OpenAI Evals), and how an answer is scored 0–1 against an item. It is
// pure: no store, no network; a judge model comes in through Judge.
package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
)

// Bounds on a suite, checked before anything is stored.
const (
	MaxItems   = 100_000
	MaxIDLen   = 128
	maxNameLen = 64
)

var (
	// ErrNotFound: no suite of that name.
	ErrNotFound = errors.New("eval: no such suite")
	// ErrExists: a suite of that name is already stored.
	ErrExists = errors.New("eval: a suite of that name exists")
)

// Suite is a named list of items with a default grader.
type Suite struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Grader    GraderSpec `json:"grader"`
	Items     []Item     `json:"items"`
	CreatedAt time.Time  `json:"created_at"`
}

// Item is one task: the prompt, what a right answer is, and optionally a
// grader of its own (else the suite's) and tags (e.g. the task kind).
type Item struct {
	ID       string          `json:"id"`
	Messages []llm.Message   `json:"messages"`
	Expected json.RawMessage `json:"expected,omitempty"`
	Grader   *GraderSpec     `json:"grader,omitempty"`
	Tags     []string        `json:"tags,omitempty"`
}

// Summary is a stored suite without its items.
type Summary struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Grader    GraderSpec     `json:"grader"`
	ItemCount int            `json:"item_count"`
	Tags      map[string]int `json:"tags"` // items per tag
	CreatedAt time.Time      `json:"created_at"`
}

// Summarize counts a suite's items and tags.
func (s *Suite) Summarize() Summary {
	sum := Summary{ID: s.ID, Name: s.Name, Grader: s.Grader, ItemCount: len(s.Items), Tags: map[string]int{}, CreatedAt: s.CreatedAt}
	for _, it := range s.Items {
		for _, t := range it.Tags {
			sum.Tags[t]++
		}
	}
	return sum
}

// Error is a problem with a suite or its file, naming where it is: the
// file's line, the item, and the field.
type Error struct {
	Line  int    // 1-based line of the file; 0 when not read from a file
	Index int    // the item's position, -1 when the problem is not an item's
	Item  string // the item's id, when known
	Field string // e.g. "grader.extract", "messages[0].role"
	Msg   string
}

func (e *Error) Error() string {
	var parts []string
	if e.Line > 0 {
		parts = append(parts, "line "+strconv.Itoa(e.Line))
	}
	if e.Item != "" {
		parts = append(parts, "item "+strconv.Quote(e.Item))
	}
	if e.Field != "" {
		parts = append(parts, "field "+e.Field)
	}
	return strings.Join(append(parts, e.Msg), ": ")
}

// Param is the field's path in an API body: items[3].grader.extract.
func (e *Error) Param() string {
	if e.Index < 0 {
		return e.Field
	}
	p := "items[" + strconv.Itoa(e.Index) + "]"
	if e.Field != "" {
		p += "." + e.Field
	}
	return p
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

var validRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true}

// Validate checks a suite whole: its name, every item, and every item's
// grader compiled against its expectation, so a bad regex or schema is
// refused at load, not found in the middle of a run. lines, when not nil,
// gives each item's line in its file.
func Validate(s *Suite, lines []int) error {
	if len(s.Name) > maxNameLen || !nameRE.MatchString(s.Name) {
		return &Error{Index: -1, Field: "name", Msg: fmt.Sprintf("want 1–%d of a-z, 0-9, '.', '_', '-' (starting with a letter or digit), got %q", maxNameLen, s.Name)}
	}
	if s.Grader.Type == "" {
		s.Grader.Type = TypeExact
	}
	if err := s.Grader.check(); err != nil {
		return &Error{Index: -1, Field: "grader" + err.Field, Msg: err.Msg}
	}
	switch n := len(s.Items); {
	case n == 0:
		return &Error{Index: -1, Field: "items", Msg: "a suite needs at least one item"}
	case n > MaxItems:
		return &Error{Index: -1, Field: "items", Msg: fmt.Sprintf("%d items: at most %d", n, MaxItems)}
	}
	seen := make(map[string]bool, len(s.Items))
	for i := range s.Items {
		it := &s.Items[i]
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		fail := func(field, format string, args ...any) error {
			return &Error{Line: line, Index: i, Item: it.ID, Field: field, Msg: fmt.Sprintf(format, args...)}
		}
		switch {
		case it.ID == "":
			return fail("id", "an item needs an id")
		case len(it.ID) > MaxIDLen:
			return fail("id", "longer than %d bytes", MaxIDLen)
		case seen[it.ID]:
			return fail("id", "another item has this id")
		}
		seen[it.ID] = true
		if len(it.Messages) == 0 {
			return fail("messages", "an item needs at least one message")
		}
		if len(it.Messages) > llm.LimitMessages {
			return fail("messages", "more than %d messages", llm.LimitMessages)
		}
		for j, m := range it.Messages {
			if !validRoles[m.Role] {
				return fail(fmt.Sprintf("messages[%d].role", j), "want system, developer, user or assistant, got %q", m.Role)
			}
		}
		for j, t := range it.Tags {
			if t == "" || len(t) > MaxIDLen {
				return fail(fmt.Sprintf("tags[%d]", j), "a tag is 1–%d bytes", MaxIDLen)
			}
		}
		spec := s.Grader
		if it.Grader != nil {
			if spec = *it.Grader; spec.Type == "" {
				return fail("grader.type", "a grader needs a type")
			}
		}
		if _, err := compile(spec, it.Expected); err != nil {
			var se *specError
			if !errors.As(err, &se) {
				return fail("grader", "%v", err)
			}
			if se.Expected {
				return fail("expected"+se.Field, "%s", se.Msg)
			}
			return fail("grader"+se.Field, "%s", se.Msg)
		}
	}
	return nil
}

// Check compiles item i's grader against its expectation.
func (s *Suite) Check(i int) (*Check, error) {
	it := &s.Items[i]
	spec := s.Grader
	if it.Grader != nil {
		spec = *it.Grader
	}
	g, err := compile(spec, it.Expected)
	if err != nil {
		return nil, err
	}
	return &Check{item: it, g: g}, nil
}

// DecodeStrict decodes JSON into v, refusing unknown fields and trailing
// data, and names the offending field in its error.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return &Error{Index: -1, Msg: "data after the JSON value"}
	}
	return nil
}

// jsonError names the field a decoding error is about.
func jsonError(err error) *Error {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	var ee *Error
	switch {
	case errors.As(err, &ee):
		return ee
	case errors.As(err, &typ):
		return &Error{Index: -1, Field: typ.Field, Msg: fmt.Sprintf("want %s, got JSON %s", typ.Type, typ.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &Error{Index: -1, Msg: "malformed JSON: it ends early"}
	case errors.As(err, &syn):
		return &Error{Index: -1, Msg: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)}
	}
	msg := err.Error()
	// encoding/json has no type for an unknown field; its message is stable.
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if uq, uerr := strconv.Unquote(f); uerr == nil {
			f = uq
		}
		return &Error{Index: -1, Field: f, Msg: "unknown field"}
	}
	return &Error{Index: -1, Msg: strings.TrimPrefix(msg, "json: ")}
}
