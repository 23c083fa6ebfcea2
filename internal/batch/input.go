package batch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// maxErrors bounds the problems one check reports: enough to fix a file
// by, not a second copy of it.
const maxErrors = 100

// Line is one request of an input file.
type Line struct {
	Number   int
	CustomID string
	URL      string
	Model    string
	Body     json.RawMessage
}

// Check is what an input file is checked against.
type Check struct {
	// Endpoint, when set, is the one url every line must name (a batch's);
	// empty: any of Endpoints (an upload).
	Endpoint string
	// Body checks a line's body as its endpoint would (httpapi's checks);
	// nil: only that it is an object with a model.
	Body func(url string, body []byte) error
	// Allowed reports whether the line's model may be used; nil: any.
	Allowed func(model string) bool
	// Served reports whether the gateway serves the line's model, so an
	// unknown one fails the file (as OpenAI validates), not each line
	// later; nil: not checked.
	Served func(model string) bool
	// MaxLine bounds one line in bytes.
	MaxLine int
}

type rawLine struct {
	CustomID *string         `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// Parse reads a JSONL input file and checks it line by line: valid JSON,
// custom_id present and unique, method POST, url an allowed endpoint, body
// an object the endpoint accepts. Every problem names its line; with any,
// the lines are not returned. Blank lines are skipped (counted).
func Parse(r io.Reader, c Check) ([]Line, []LineError, error) {
	maxLine := c.MaxLine
	if maxLine <= 0 {
		maxLine = 64 << 20
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var (
		lines []Line
		errs  []LineError
		seen  = map[string]int{}
		n     int
	)
	customID := ""
	add := func(line int, code, param, format string, args ...any) {
		if len(errs) < maxErrors {
			errs = append(errs, LineError{Code: code, Param: param, Line: line, CustomID: customID,
				Message: fmt.Sprintf("line %d: ", line) + fmt.Sprintf(format, args...)})
		}
	}
	for sc.Scan() {
		n++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		customID = peekCustomID(text)
		l, ok := checkLine(n, text, c, seen, add)
		if ok {
			seen[l.CustomID] = n
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			add(n+1, "line_too_long", "", "longer than %d bytes", maxLine)
			return nil, errs, nil
		}
		return nil, nil, err
	}
	if len(lines) == 0 && len(errs) == 0 {
		errs = append(errs, LineError{Code: "empty_file", Message: "the file holds no requests"})
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	return lines, nil, nil
}

func checkLine(n int, text []byte, c Check, seen map[string]int, add func(int, string, string, string, ...any)) (Line, bool) {
	var raw rawLine
	if err := json.Unmarshal(text, &raw); err != nil {
		add(n, "invalid_json", "", "not a JSON object: %v", err)
		return Line{}, false
	}
	switch {
	case raw.CustomID == nil || *raw.CustomID == "":
		add(n, "missing_custom_id", "custom_id", "custom_id is required")
		return Line{}, false
	case seen[*raw.CustomID] > 0:
		add(n, "duplicate_custom_id", "custom_id", "custom_id %q is used on line %d too; each must be unique", *raw.CustomID, seen[*raw.CustomID])
		return Line{}, false
	case raw.Method != "POST":
		add(n, "invalid_method", "method", "method must be POST, not %q", raw.Method)
		return Line{}, false
	case c.Endpoint != "" && raw.URL != c.Endpoint:
		add(n, "mismatched_url", "url", "url %q is not the batch's endpoint %s", raw.URL, c.Endpoint)
		return Line{}, false
	case !slices.Contains(Endpoints, raw.URL):
		add(n, "invalid_url", "url", "url %q is not one of %v", raw.URL, Endpoints)
		return Line{}, false
	}
	body := bytes.TrimSpace(raw.Body)
	if len(body) == 0 || body[0] != '{' {
		add(n, "invalid_body", "body", "body must be a JSON object")
		return Line{}, false
	}
	var head struct {
		Model string `json:"model"`
	}
	_ = json.Unmarshal(body, &head)
	if head.Model == "" {
		add(n, "missing_model", "body.model", "body.model is required")
		return Line{}, false
	}
	if c.Body != nil {
		if err := c.Body(raw.URL, body); err != nil {
			add(n, "invalid_body", "body", "%v", err)
			return Line{}, false
		}
	}
	if c.Served != nil && !c.Served(head.Model) {
		add(n, "model_not_found", "body.model", "the model %q does not exist; GET /v1/models lists the models", truncate(head.Model, 128))
		return Line{}, false
	}
	if c.Allowed != nil && !c.Allowed(head.Model) {
		add(n, "model_not_allowed", "body.model", "this key may not use model %q", head.Model)
		return Line{}, false
	}
	return Line{Number: n, CustomID: *raw.CustomID, URL: raw.URL, Model: head.Model, Body: json.RawMessage(body)}, true
}

// peekCustomID reads a line's custom_id for its error line, when it has one.
func peekCustomID(text []byte) string {
	var v struct {
		CustomID string `json:"custom_id"`
	}
	_ = json.Unmarshal(text, &v)
	return v.CustomID
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
