package eval

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
)

func user(s string) []llm.Message { return []llm.Message{{Role: "user", Content: llm.TextContent(s)}} }

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// load parses a file and validates it as a suite, as the CLI does.
func load(name, data string, opt Options, grader GraderSpec) (*Suite, error) {
	p, err := Parse(name, []byte(data), opt)
	if err != nil {
		return nil, err
	}
	s := &Suite{Name: "t", Grader: grader, Items: p.Items}
	return s, Validate(s, p.Lines)
}

func TestParse(t *testing.T) {
	exact := GraderSpec{Type: TypeExact}
	tests := []struct {
		name   string
		file   string
		data   string
		opt    Options
		grader GraderSpec
		want   []Item
	}{
		{"native", "s.jsonl",
			`{"id":"a","messages":[{"role":"user","content":"2+2?"}],"expected":"4","tags":["math"]}` + "\n\n" +
				`{"id":"b","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}],"expected":"Paris","grader":{"type":"contains","ignore_case":true}}` + "\r\n",
			Options{}, exact,
			[]Item{
				{ID: "a", Messages: user("2+2?"), Expected: raw(`"4"`), Tags: []string{"math"}},
				{ID: "b", Messages: []llm.Message{{Role: "system", Content: llm.TextContent("Be brief.")}, {Role: "user", Content: llm.TextContent("Capital of France?")}},
					Expected: raw(`"Paris"`), Grader: &GraderSpec{Type: TypeContains, IgnoreCase: true}},
			}},
		{"native: a grader named by a string, an id from the line", "s.jsonl",
			"\xEF\xBB\xBF" + `{"messages":[{"role":"user","content":"hi"}],"expected":"hello","grader":"exact"}`,
			Options{}, exact,
			[]Item{{ID: "1", Messages: user("hi"), Expected: raw(`"hello"`), Grader: &GraderSpec{Type: TypeExact}}}},
		{"openai evals", "samples.jsonl",
			`{"input":[{"role":"system","content":"Answer."},{"role":"user","content":"1+1?"}],"ideal":"2"}` + "\n" +
				`{"input":"Name a primary colour.","ideal":["red","blue","yellow"],"metadata":{"src":"x"}}`,
			Options{}, GraderSpec{Type: TypeContains},
			[]Item{
				{ID: "1", Messages: []llm.Message{{Role: "system", Content: llm.TextContent("Answer.")}, {Role: "user", Content: llm.TextContent("1+1?")}}, Expected: raw(`"2"`)},
				{ID: "2", Messages: user("Name a primary colour."), Expected: raw(`["red","blue","yellow"]`)},
			}},
		{"promptfoo config", "promptfooconfig.yaml", `
prompts:
  - "Translate to French: {{ text }}"
defaultTest:
  vars: {text: default}
tests:
  - description: greeting
    vars: {text: Hello}
    assert:
      - type: equals
        value: Bonjour
  - vars: {text: Thanks}
    assert:
      - type: icontains
        value: merci
      - type: regex
        value: "^[A-Z]"
  - assert:
      - type: is-json
      - type: llm-rubric
        value: is French
  - vars: {text: 42}
    assert:
      - type: contains
        value: 42
`, Options{}, exact,
			[]Item{
				{ID: "1", Messages: user("Translate to French: Hello"), Expected: raw(`"Bonjour"`), Grader: &GraderSpec{Type: TypeExact}},
				{ID: "2", Messages: user("Translate to French: Thanks"), Grader: &GraderSpec{Type: TypeAll, All: []GraderSpec{
					{Type: TypeContains, IgnoreCase: true, Value: raw(`"merci"`)}, {Type: TypeRegex, Value: raw(`"^[A-Z]"`)}}}},
				{ID: "3", Messages: user("Translate to French: default"), Grader: &GraderSpec{Type: TypeAll, All: []GraderSpec{
					{Type: TypeJSONSchema, Schema: raw(`{}`)}, {Type: TypeJudge, Rubric: "is French"}}}},
				{ID: "4", Messages: user("Translate to French: 42"), Expected: raw(`"42"`), Grader: &GraderSpec{Type: TypeContains}},
			}},
		{"promptfoo bare tests in JSON, one var, schema", "tests.json",
			`[{"vars":{"q":"Give a person as JSON"},"assert":[{"type":"is-json","value":{"type":"object","required":["name"]}}]}]`,
			Options{}, exact,
			[]Item{{ID: "1", Messages: user("Give a person as JSON"), Grader: &GraderSpec{Type: TypeJSONSchema, Schema: raw(`{"required":["name"],"type":"object"}`)}}}},
		{"promptfoo chat prompt and --prompt", "t.yaml", `
- vars: {q: "2+2?"}
  assert: [{type: equals, value: "4"}]
`, Options{Prompt: `[{"role":"system","content":"Be terse."},{"role":"user","content":"{{q}}"}]`}, exact,
			[]Item{{ID: "1", Messages: []llm.Message{{Role: "system", Content: llm.TextContent("Be terse.")}, {Role: "user", Content: llm.TextContent("2+2?")}},
				Expected: raw(`"4"`), Grader: &GraderSpec{Type: TypeExact}}}},
		{"format forced", "data.txt", `{"input":"hi","ideal":"hello"}`, Options{Format: FormatOpenAI}, exact,
			[]Item{{ID: "1", Messages: user("hi"), Expected: raw(`"hello"`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := load(tt.file, tt.data, tt.opt, tt.grader)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, s.Items); d != "" {
				t.Errorf("items (-want +got):\n%s", d)
			}
		})
	}
}

// TestParseErrors: a bad file is refused whole, with the line and field.
func TestParseErrors(t *testing.T) {
	ok := `{"id":"a","messages":[{"role":"user","content":"x"}],"expected":"y"}`
	tests := []struct {
		name   string
		file   string
		data   string
		opt    Options
		grader GraderSpec
		want   string
	}{
		{"malformed line", "s.jsonl", ok + "\n{\"id\":", Options{}, GraderSpec{}, "line 2: malformed JSON"},
		{"unknown field", "s.jsonl", ok + "\n\n" + `{"id":"b","messages":[],"expectd":"y"}`, Options{}, GraderSpec{}, "line 3: field expectd: unknown field"},
		{"unknown grader field", "s.jsonl", `{"id":"b","messages":[{"role":"user","content":"x"}],"expected":"y","grader":{"type":"exact","extrakt":"x"}}`, Options{}, GraderSpec{},
			"line 1: field extrakt: unknown field"},
		{"wrong type", "s.jsonl", `{"id":"a","messages":"hi","expected":"y"}`, Options{}, GraderSpec{}, "line 1: field messages: want []llm.Message"},
		{"no messages", "s.jsonl", ok + "\n" + `{"id":"b","messages":[],"expected":"y"}`, Options{}, GraderSpec{}, `line 2: item "b": field messages: an item needs at least one message`},
		{"bad role", "s.jsonl", `{"id":"a","messages":[{"role":"robot","content":"x"}],"expected":"y"}`, Options{}, GraderSpec{}, `line 1: item "a": field messages[0].role: want system`},
		{"duplicate id", "s.jsonl", ok + "\n" + ok, Options{}, GraderSpec{}, `line 2: item "a": field id: another item has this id`},
		{"bad extract", "s.jsonl", ok + "\n" + `{"id":"b","messages":[{"role":"user","content":"x"}],"expected":"y","grader":{"type":"exact","extract":"(a"}}`, Options{}, GraderSpec{},
			`line 2: item "b": field grader.extract: bad regex`},
		{"suite grader bad extract", "s.jsonl", ok, Options{}, GraderSpec{Type: TypeExact, Extract: "[z-a]"}, `field grader.extract: bad regex`},
		{"expected does not fit the suite's grader", "s.jsonl", ok, Options{}, GraderSpec{Type: TypeNumeric}, `line 1: item "a": field expected: want a finite number`},
		{"empty tag", "s.jsonl", `{"id":"a","messages":[{"role":"user","content":"x"}],"expected":"y","tags":[""]}`, Options{}, GraderSpec{}, `line 1: item "a": field tags[0]`},
		{"empty file", "s.jsonl", "\n\n", Options{}, GraderSpec{}, "field items: a suite needs at least one item"},
		{"openai no ideal", "s.jsonl", `{"input":"hi"}` + "\n" + `{"input":"hi","ideal":null}`, Options{Format: FormatOpenAI}, GraderSpec{}, "line 1: field ideal"},
		{"openai bad input", "s.jsonl", `{"input":"a","ideal":"b"}` + "\n" + `{"input":{"role":"user"},"ideal":"b"}`, Options{}, GraderSpec{}, "line 2: field input"},
		{"unknown format", "s.jsonl", ok, Options{Format: "csv"}, GraderSpec{}, "field format"},
		{"promptfoo unsupported assertion", "t.yaml", "tests:\n  - vars: {q: a}\n    assert: [{type: equals, value: a}]\n  - vars: {q: b}\n    assert:\n      - type: equals\n        value: b\n      - type: javascript\n        value: output.length > 1\n",
			Options{}, GraderSpec{}, `line 4: item "2": field assert[1].type: assertion "javascript" is not supported`},
		{"promptfoo missing var", "t.yaml", "prompts: ['Say {{word}} to {{name}}']\ntests:\n  - vars: {word: hi}\n    assert: [{type: contains, value: hi}]\n",
			Options{}, GraderSpec{}, `line 3: item "1": field vars.name: the prompt uses this var`},
		{"promptfoo no template", "t.yaml", "- vars: {a: 1, b: 2}\n  assert: [{type: contains, value: x}]\n", Options{}, GraderSpec{}, "line 1: item \"1\": field vars: no prompt template"},
		{"promptfoo no assertion", "t.yaml", "- vars: {a: x}\n", Options{}, GraderSpec{}, "line 1: item \"1\": field assert"},
		{"promptfoo equals without value", "t.yaml", "- vars: {a: x}\n  assert: [{type: equals}]\n", Options{}, GraderSpec{}, `line 1: item "1": field assert[0].value`},
		{"promptfoo bad regex", "t.yaml", "- vars: {a: x}\n  assert: [{type: regex, value: '(x'}]\n", Options{}, GraderSpec{}, `line 1: item "1": field expected: bad regex`},
		{"promptfoo tests in another file", "c.yaml", "prompts: [hi]\ntests: file://tests.csv\n", Options{}, GraderSpec{}, "line 2: field tests"},
		{"promptfoo two prompts", "c.yaml", "prompts: [a, b]\ntests: []\n", Options{}, GraderSpec{}, "line 1: field prompts"},
		{"not yaml", "c.yaml", "tests: [\n", Options{}, GraderSpec{}, "not YAML or JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.file, tt.data, tt.opt, tt.grader)
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to start %q", err, tt.want)
			}
		})
	}
}

func TestErrorParam(t *testing.T) {
	s := &Suite{Name: "t", Grader: GraderSpec{Type: TypeExact}, Items: []Item{
		{ID: "a", Messages: user("x"), Expected: raw(`"y"`)},
		{ID: "b", Messages: user("x"), Expected: raw(`"y"`), Grader: &GraderSpec{Type: TypeRegex, Value: raw(`"("`)}},
	}}
	var ee *Error
	if err := Validate(s, nil); !errors.As(err, &ee) || ee.Param() != "items[1].expected" || ee.Line != 0 {
		t.Fatalf("err = %v (param %q)", err, ee.Param())
	}
	bad := &Suite{Name: "Bad Name", Items: s.Items[:1]}
	if err := Validate(bad, nil); !errors.As(err, &ee) || ee.Param() != "name" {
		t.Fatalf("a bad name: %v", err)
	}
}

// TestDemo: the built-in suite loads, has its four kinds, and each item's
// own expected answer passes its grader (so a perfect model scores 1).
func TestDemo(t *testing.T) {
	s, err := Demo()
	if err != nil {
		t.Fatal(err)
	}
	sum := s.Summarize()
	want := map[string]int{"classification": 10, "arithmetic": 10, "extraction": 10, "short_answer": 10}
	if d := cmp.Diff(want, sum.Tags); d != "" || sum.ItemCount != 40 {
		t.Errorf("tags (-want +got):\n%s, items %d", d, sum.ItemCount)
	}
	perfect := map[string]func(e json.RawMessage) string{
		"classification": func(e json.RawMessage) string { var s string; _ = json.Unmarshal(e, &s); return "Sentiment: " + s },
		"arithmetic":     func(e json.RawMessage) string { return "Let me work it out.\nAnswer: " + string(e) },
		"extraction":     func(e json.RawMessage) string { return "```json\n" + string(e) + "\n```" },
		"short_answer":   func(e json.RawMessage) string { var s string; _ = json.Unmarshal(e, &s); return strings.ToUpper(s) },
	}
	for i, it := range s.Items {
		c, err := s.Check(i)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Grade(context.Background(), perfect[it.Tags[0]](it.Expected), nil)
		if err != nil || r.Score != 1 {
			t.Errorf("%s: a right answer scored %+v, %v", it.ID, r, err)
		}
		r, _ = c.Grade(context.Background(), "I don't know.", nil)
		if r.Score != 0 {
			t.Errorf("%s: a non-answer scored %+v", it.ID, r)
		}
	}
}
