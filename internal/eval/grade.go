package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Grader types.
const (
	TypeExact      = "exact"
	TypeContains   = "contains"
	TypeRegex      = "regex"
	TypeNumeric    = "numeric"
	TypeJSONSchema = "json_schema"
	TypeJSONFields = "json_fields"
	TypeChoice     = "choice"
	TypeJudge      = "judge"
	TypeAll        = "all" // every part must pass; what promptfoo's several asserts mean
)

// Types lists the grader types.
var Types = []string{TypeExact, TypeContains, TypeRegex, TypeNumeric, TypeJSONSchema, TypeJSONFields, TypeChoice, TypeJudge, TypeAll}

// GraderSpec configures a grader: {"type": "exact", "extract": "Answer:\\s*(.+)"}.
// In JSON a bare string names the type alone: "exact".
type GraderSpec struct {
	Type string `json:"type"`
	// Extract, when set, grades the first group of the regex's last match in
	// the answer (the whole match if it has no group) instead of the answer.
	Extract string `json:"extract,omitempty"`
	// IgnoreCase: exact, contains, regex and choice compare without case.
	IgnoreCase bool `json:"ignore_case,omitempty"`
	// Tolerance and RelTolerance (numeric): the answer passes within either
	// the absolute or the relative distance of the expected number.
	Tolerance    float64 `json:"tolerance,omitempty"`
	RelTolerance float64 `json:"rel_tolerance,omitempty"`
	// Labels (choice): the set the answer must pick one of.
	Labels []string `json:"labels,omitempty"`
	// Schema (json_schema): the JSON Schema; else the item's expected is.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Rubric (judge): what the judge grades against; else the item's expected is.
	Rubric string `json:"rubric,omitempty"`
	// All (all): the parts, each with its own Value.
	All []GraderSpec `json:"all,omitempty"`
	// Value, when set, is this grader's expectation in place of the item's.
	Value json.RawMessage `json:"value,omitempty"`
}

type specAlias GraderSpec

// UnmarshalJSON takes a type name or an object, refusing unknown fields.
func (g *GraderSpec) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		*g = GraderSpec{}
		return json.Unmarshal(data, &g.Type)
	}
	var a specAlias
	if err := DecodeStrict(data, &a); err != nil {
		return err
	}
	*g = GraderSpec(a)
	return nil
}

// specError is a grader problem; Field is relative (".extract"), and
// Expected says the item's expectation is at fault rather than the grader.
type specError struct {
	Field    string
	Expected bool
	Msg      string
}

func (e *specError) Error() string { return e.Field + ": " + e.Msg }

func badSpec(field, format string, args ...any) *specError {
	return &specError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func badExpected(format string, args ...any) *specError {
	return &specError{Expected: true, Msg: fmt.Sprintf(format, args...)}
}

// check validates what the spec says by itself, without an item.
func (g GraderSpec) check() *specError {
	if !slices.Contains(Types, g.Type) {
		return badSpec(".type", "unknown grader %q (want one of %s)", g.Type, strings.Join(Types, ", "))
	}
	if g.Extract != "" {
		if _, err := regexp.Compile(g.Extract); err != nil {
			return badSpec(".extract", "bad regex: %v", err)
		}
	}
	if !finite(g.Tolerance) || g.Tolerance < 0 || !finite(g.RelTolerance) || g.RelTolerance < 0 {
		return badSpec(".tolerance", "tolerances are finite and not negative")
	}
	if g.Type == TypeChoice {
		if len(g.Labels) == 0 {
			return badSpec(".labels", "a choice grader needs its labels")
		}
		seen := map[string]bool{}
		for i, l := range g.Labels {
			n := normalizeChoice(l)
			if n == "" || seen[n] {
				return badSpec(fmt.Sprintf(".labels[%d]", i), "labels are distinct and not empty")
			}
			seen[n] = true
		}
	}
	if len(g.Schema) > 0 {
		if _, err := compileSchema(g.Schema); err != nil {
			return badSpec(".schema", "%v", err)
		}
	}
	if g.Type == TypeAll {
		if len(g.All) == 0 {
			return badSpec(".all", "an all grader needs its parts")
		}
		for i, p := range g.All {
			if p.Type == TypeAll {
				return badSpec(fmt.Sprintf(".all[%d].type", i), "parts do not nest")
			}
			if err := p.check(); err != nil {
				err.Field = fmt.Sprintf(".all[%d]%s", i, err.Field)
				return err
			}
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Result is one graded answer.
type Result struct {
	Score  float64 `json:"score"` // 0–1
	Reason string  `json:"reason,omitempty"`
}

func pass(ok bool, why string) Result {
	if ok {
		return Result{Score: 1}
	}
	return Result{Reason: why}
}

// Check is an item's compiled grader.
type Check struct {
	item *Item
	g    grader
}

// Grade scores an answer to the item; judge is needed by judge graders only.
func (c *Check) Grade(ctx context.Context, answer string, judge Judge) (Result, error) {
	return c.g.grade(ctx, &gradeEnv{item: c.item, judge: judge}, answer)
}

type gradeEnv struct {
	item  *Item
	judge Judge
}

type grader interface {
	grade(ctx context.Context, env *gradeEnv, answer string) (Result, error)
}

type gradeFunc func(ctx context.Context, env *gradeEnv, answer string) (Result, error)

func (f gradeFunc) grade(ctx context.Context, env *gradeEnv, answer string) (Result, error) {
	return f(ctx, env, answer)
}

// pure adapts a grader that needs neither context nor judge.
func pure(f func(answer string) Result) grader {
	return gradeFunc(func(_ context.Context, _ *gradeEnv, answer string) (Result, error) { return f(answer), nil })
}

// compile builds the grader of spec for an item's expectation.
func compile(spec GraderSpec, expected json.RawMessage) (grader, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	if len(spec.Value) > 0 {
		expected = spec.Value
	}
	g, err := compileType(spec, expected)
	if err != nil {
		return nil, err
	}
	if spec.Extract == "" {
		return g, nil
	}
	re := regexp.MustCompile(spec.Extract) // checked above
	return gradeFunc(func(ctx context.Context, env *gradeEnv, answer string) (Result, error) {
		got, ok := extract(re, answer)
		if !ok {
			return Result{Reason: "extract matched nothing"}, nil
		}
		return g.grade(ctx, env, got)
	}), nil
}

// extract returns the first group (else the whole) of re's last match.
func extract(re *regexp.Regexp, s string) (string, bool) {
	ms := re.FindAllStringSubmatch(s, -1)
	if len(ms) == 0 {
		return "", false
	}
	last := ms[len(ms)-1]
	if len(last) > 1 {
		return last[1], true
	}
	return last[0], true
}

func compileType(spec GraderSpec, expected json.RawMessage) (grader, error) {
	switch spec.Type {
	case TypeExact, TypeContains:
		wants, err := expectStrings(expected)
		if err != nil {
			return nil, err
		}
		return textGrader(spec, wants), nil
	case TypeRegex:
		pats, err := expectStrings(expected)
		if err != nil {
			return nil, err
		}
		return regexGrader(spec, pats)
	case TypeNumeric:
		return numericGrader(spec, expected)
	case TypeJSONSchema:
		return schemaGrader(spec, expected)
	case TypeJSONFields:
		return fieldsGrader(expected)
	case TypeChoice:
		return choiceGrader(spec, expected)
	case TypeJudge:
		return judgeGrader(spec, expected)
	case TypeAll:
		return allGrader(spec, expected)
	}
	return nil, badSpec(".type", "unknown grader %q", spec.Type)
}

// expectStrings reads an expectation of one or several acceptable strings;
// a number or boolean stands for its JSON text.
func expectStrings(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badExpected("this grader needs an expected answer")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		return many, nil
	}
	switch raw[0] {
	case '{', '[', '"':
		return nil, badExpected("want a string or a non-empty list of strings")
	}
	return []string{string(raw)}, nil
}

func textGrader(spec GraderSpec, wants []string) grader {
	fold := func(s string) string {
		s = strings.TrimSpace(s)
		if spec.IgnoreCase {
			return strings.ToLower(s)
		}
		return s
	}
	for i := range wants {
		wants[i] = fold(wants[i])
	}
	contains := spec.Type == TypeContains
	return pure(func(answer string) Result {
		got := fold(answer)
		for _, w := range wants {
			if (contains && strings.Contains(got, w)) || (!contains && got == w) {
				return Result{Score: 1}
			}
		}
		if contains {
			return Result{Reason: "the expected text is not in the answer"}
		}
		return Result{Reason: "the answer differs from the expected"}
	})
}

func regexGrader(spec GraderSpec, pats []string) (grader, error) {
	var res []*regexp.Regexp
	for _, p := range pats {
		if spec.IgnoreCase {
			p = "(?i)" + p
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, badExpected("bad regex: %v", err)
		}
		res = append(res, re)
	}
	return pure(func(answer string) Result {
		for _, re := range res {
			if re.MatchString(answer) {
				return Result{Score: 1}
			}
		}
		return Result{Reason: "the answer does not match"}
	}), nil
}

var (
	numberRE    = regexp.MustCompile(`[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?`)
	thousandsRE = regexp.MustCompile(`^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$`)
)

// parseNumber reads an answer as a number: the whole of it, else its last
// number ("… so the total is 1,234.5."). Commas count as thousands
// separators only where they group by three.
func parseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if v, ok := parseOne(s); ok {
		return v, true
	}
	ms := numberRE.FindAllString(s, -1)
	if len(ms) == 0 {
		return 0, false
	}
	return parseOne(strings.TrimRight(ms[len(ms)-1], ","))
}

func parseOne(s string) (float64, bool) {
	if thousandsRE.MatchString(s) {
		s = strings.ReplaceAll(s, ",", "")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !finite(v) {
		return 0, false
	}
	return v, true
}

func numericGrader(spec GraderSpec, expected json.RawMessage) (grader, error) {
	wants, err := expectStrings(expected)
	if err != nil {
		return nil, err
	}
	if len(wants) != 1 {
		return nil, badExpected("want one number")
	}
	want, ok := parseOne(strings.TrimSpace(wants[0]))
	if !ok {
		return nil, badExpected("want a finite number, got %q", wants[0])
	}
	tol := max(spec.Tolerance, spec.RelTolerance*math.Abs(want))
	return pure(func(answer string) Result {
		got, ok := parseNumber(answer)
		if !ok {
			return Result{Reason: "no number in the answer"}
		}
		return pass(math.Abs(got-want) <= tol, fmt.Sprintf("got %g, want %g", got, want))
	}), nil
}

// refuseLoader keeps a schema from reaching files or the network through $ref.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("$ref to %s: only references inside the schema are allowed", url)
}

const schemaURL = "tidegate:schema.json"

func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(refuseLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
}

// answerJSON parses an answer as JSON, inside a Markdown code fence if the
// model put it in one.
func answerJSON(answer string) (any, error) {
	s := strings.TrimSpace(answer)
	if rest, ok := strings.CutPrefix(s, "```"); ok {
		if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
			rest = rest[nl+1:]
		}
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "```"))
	}
	return jsonschema.UnmarshalJSON(strings.NewReader(s))
}

func schemaGrader(spec GraderSpec, expected json.RawMessage) (grader, error) {
	raw := spec.Schema
	if len(raw) == 0 {
		if len(bytes.TrimSpace(expected)) == 0 {
			return nil, badExpected("a json_schema grader needs a schema (grader.schema or expected)")
		}
		raw = expected
	}
	sch, err := compileSchema(raw)
	if err != nil {
		return nil, badExpected("%v", err)
	}
	return pure(func(answer string) Result {
		v, err := answerJSON(answer)
		if err != nil {
			return Result{Reason: "the answer is not JSON"}
		}
		if err := sch.Validate(v); err != nil {
			return Result{Reason: "the answer does not fit the schema"}
		}
		return Result{Score: 1}
	}), nil
}

// fieldsGrader scores the share of the expected object's fields that the
// answer's JSON object holds with equal values (numbers by value).
func fieldsGrader(expected json.RawMessage) (grader, error) {
	var want map[string]any
	if err := json.Unmarshal(expected, &want); err != nil || len(want) == 0 {
		return nil, badExpected("a json_fields grader expects a non-empty JSON object")
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return pure(func(answer string) Result {
		v, err := answerJSON(answer)
		got, ok := v.(map[string]any)
		if err != nil || !ok {
			return Result{Reason: "the answer is not a JSON object"}
		}
		var missed []string
		for _, k := range keys {
			if v, ok := got[k]; !ok || !jsonEqual(want[k], v) {
				missed = append(missed, k)
			}
		}
		r := Result{Score: float64(len(keys)-len(missed)) / float64(len(keys))}
		if len(missed) > 0 {
			r.Reason = "fields differ: " + strings.Join(missed, ", ")
		}
		return r
	}), nil
}

// jsonEqual compares decoded JSON; jsonschema's decoder gives json.Number,
// encoding/json's float64, so numbers compare by value.
func jsonEqual(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// normalizeChoice lowers a label or answer and strips what models wrap
// labels in: spaces, quotes, Markdown emphasis, brackets, final punctuation.
func normalizeChoice(s string) string {
	return strings.TrimFunc(strings.ToLower(s), func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("\"'`*_.,;:!?()[]{}<>", r)
	})
}

func choiceGrader(spec GraderSpec, expected json.RawMessage) (grader, error) {
	wants, err := expectStrings(expected)
	if err != nil {
		return nil, err
	}
	labels := make([]string, len(spec.Labels))
	for i, l := range spec.Labels {
		labels[i] = normalizeChoice(l)
	}
	want := normalizeChoice(wants[0])
	if len(wants) != 1 || !slices.Contains(labels, want) {
		return nil, badExpected("want one of the labels %v", spec.Labels)
	}
	return pure(func(answer string) Result {
		got, ok := pickLabel(labels, answer)
		if !ok {
			return Result{Reason: "the answer names no single label"}
		}
		return pass(got == want, fmt.Sprintf("chose %q, want %q", got, want))
	}), nil
}

// pickLabel finds the one label an answer names: the whole answer, else the
// only label that appears in it as a word.
func pickLabel(labels []string, answer string) (string, bool) {
	a := normalizeChoice(answer)
	if slices.Contains(labels, a) {
		return a, true
	}
	found := ""
	for _, l := range labels {
		if containsWord(a, l) {
			if found != "" {
				return "", false
			}
			found = l
		}
	}
	return found, found != ""
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		before, _ := utf8.DecodeLastRuneInString(s[:start])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (start == 0 || !isWordRune(before)) && (end == len(s) || !isWordRune(after)) {
			return true
		}
		i = start + 1
	}
	return false
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

func allGrader(spec GraderSpec, expected json.RawMessage) (grader, error) {
	parts := make([]grader, len(spec.All))
	for i, p := range spec.All {
		g, err := compile(p, expected)
		if err != nil {
			if se, ok := err.(*specError); ok && !se.Expected {
				se.Field = fmt.Sprintf(".all[%d]%s", i, se.Field)
			}
			return nil, err
		}
		parts[i] = g
	}
	// The weakest part is the score: an item is solved only when all pass.
	return gradeFunc(func(ctx context.Context, env *gradeEnv, answer string) (Result, error) {
		worst := Result{Score: 1}
		for _, g := range parts {
			r, err := g.grade(ctx, env, answer)
			if err != nil {
				return Result{}, err
			}
			if r.Score < worst.Score {
				worst = r
			}
		}
		return worst, nil
	}), nil
}
