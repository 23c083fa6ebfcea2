package eval

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
)

// grade compiles spec for expected and grades answer with no judge.
func grade(t *testing.T, spec GraderSpec, expected, answer string) Result {
	t.Helper()
	g, err := compile(spec, json.RawMessage(expected))
	if err != nil {
		t.Fatalf("compile %+v with %s: %v", spec, expected, err)
	}
	r, err := g.grade(context.Background(), &gradeEnv{item: &Item{}}, answer)
	if err != nil {
		t.Fatalf("grade: %v", err)
	}
	return r
}

func TestGraders(t *testing.T) {
	sentiment := GraderSpec{Type: TypeChoice, Labels: []string{"Positive", "negative", "neutral"}}
	person := `{"type":"object","required":["name","age"],"properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0}}}`
	tests := []struct {
		name     string
		spec     GraderSpec
		expected string
		answer   string
		want     float64
	}{
		{"exact trims", GraderSpec{Type: TypeExact}, `"Paris"`, "  Paris\n", 1},
		{"exact is case-sensitive", GraderSpec{Type: TypeExact}, `"Paris"`, "paris", 0},
		{"exact ignore_case", GraderSpec{Type: TypeExact, IgnoreCase: true}, `"Paris"`, "PARIS", 1},
		{"exact refuses a longer answer", GraderSpec{Type: TypeExact}, `"Paris"`, "Paris, France", 0},
		{"exact any of a list", GraderSpec{Type: TypeExact}, `["6","six"]`, "six", 1},
		{"exact number expected", GraderSpec{Type: TypeExact}, `1969`, "1969", 1},
		{"extract grades the last match's group", GraderSpec{Type: TypeExact, Extract: `Answer:\s*(.+)`}, `"B"`, "Answer: A\nno wait\nAnswer: B", 1},
		{"extract: the first match alone fails", GraderSpec{Type: TypeExact, Extract: `Answer:\s*(.+)`}, `"A"`, "Answer: A\nAnswer: B", 0},
		{"extract trims what it took", GraderSpec{Type: TypeExact, Extract: `Answer:(.+)`}, `"42"`, "Answer:   42  ", 1},
		{"extract without a group takes the match", GraderSpec{Type: TypeExact, Extract: `\d+`}, `"7"`, "3 then 7", 1},
		{"extract matching nothing fails", GraderSpec{Type: TypeExact, Extract: `Answer:\s*(.+)`}, `"B"`, "B", 0},
		{"contains", GraderSpec{Type: TypeContains}, `"refund"`, "We will refund you today.", 1},
		{"contains is case-sensitive", GraderSpec{Type: TypeContains}, `"Refund"`, "we will refund", 0},
		{"contains ignore_case", GraderSpec{Type: TypeContains, IgnoreCase: true}, `"Refund"`, "we will REFUND", 1},
		{"contains any of a list", GraderSpec{Type: TypeContains}, `["yes","sure"]`, "Sure, sure.", 1},
		{"regex", GraderSpec{Type: TypeRegex}, `"^\\d{3}-\\d{4}$"`, "555-1234", 1},
		{"regex no match", GraderSpec{Type: TypeRegex}, `"^\\d{3}-\\d{4}$"`, "call 555-1234", 0},
		{"regex ignore_case", GraderSpec{Type: TypeRegex, IgnoreCase: true}, `"^yes"`, "YES indeed", 1},
		{"numeric exact", GraderSpec{Type: TypeNumeric}, `42`, "42", 1},
		{"numeric last number in prose", GraderSpec{Type: TypeNumeric}, `391`, "17 × 23 = 391.", 1},
		{"numeric thousands separators", GraderSpec{Type: TypeNumeric}, `108000`, "It is 108,000 tokens", 1},
		{"numeric a comma list is not thousands", GraderSpec{Type: TypeNumeric}, `34`, "3,4", 0},
		{"numeric expected as a string", GraderSpec{Type: TypeNumeric}, `"2.5"`, "2.50", 1},
		{"numeric within tolerance", GraderSpec{Type: TypeNumeric, Tolerance: 0.01}, `3.14159`, "3.14", 1},
		{"numeric outside tolerance", GraderSpec{Type: TypeNumeric, Tolerance: 0.001}, `3.14159`, "3.14", 0},
		{"numeric relative tolerance", GraderSpec{Type: TypeNumeric, RelTolerance: 0.01}, `1000`, "1009", 1},
		{"numeric negative", GraderSpec{Type: TypeNumeric}, `-5`, "the result is -5", 1},
		{"numeric no number", GraderSpec{Type: TypeNumeric}, `5`, "five", 0},
		{"numeric with extract", GraderSpec{Type: TypeNumeric, Extract: `(?i)answer:\s*([-+0-9.,]+)`}, `42.5`, "15 × 3.5 = 52.5, less 10.\nAnswer: 42.5.", 1},
		{"json_schema valid", GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(person)}, ``, `{"name":"Li","age":30}`, 1},
		{"json_schema in a code fence", GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(person)}, ``, "```json\n{\"name\":\"Li\",\"age\":30}\n```", 1},
		{"json_schema wrong type", GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(person)}, ``, `{"name":"Li","age":"30"}`, 0},
		{"json_schema missing field", GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(person)}, ``, `{"name":"Li"}`, 0},
		{"json_schema not JSON", GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(person)}, ``, `name: Li`, 0},
		{"json_schema from expected", GraderSpec{Type: TypeJSONSchema}, `{"type":"array"}`, `[1,2]`, 1},
		{"json_fields all match", GraderSpec{Type: TypeJSONFields}, `{"name":"Li Wei","order":4411}`, `{"order":4411.0,"name":"Li Wei","extra":true}`, 1},
		{"json_fields half", GraderSpec{Type: TypeJSONFields}, `{"name":"Li Wei","order":4411}`, `{"name":"Li Wei","order":"4411"}`, 0.5},
		{"json_fields nested equal", GraderSpec{Type: TypeJSONFields}, `{"a":{"b":[1,"x"]}}`, `{"a":{"b":[1,"x"]}}`, 1},
		{"json_fields nested differs", GraderSpec{Type: TypeJSONFields}, `{"a":{"b":[1,"x"]}}`, `{"a":{"b":[1,"x"],"c":2}}`, 0},
		{"json_fields missing field", GraderSpec{Type: TypeJSONFields}, `{"a":null}`, `{}`, 0},
		{"json_fields not an object", GraderSpec{Type: TypeJSONFields}, `{"a":1}`, `[1]`, 0},
		{"choice bare", sentiment, `"positive"`, "positive", 1},
		{"choice normalised", sentiment, `"positive"`, "**Positive.**", 1},
		{"choice in a sentence", sentiment, `"negative"`, "The sentiment is negative overall.", 1},
		{"choice wrong label", sentiment, `"negative"`, "neutral", 0},
		{"choice two labels is no choice", sentiment, `"negative"`, "Not positive, rather negative.", 0},
		{"choice a word inside another is no label", sentiment, `"neutral"`, "neutrally speaking, positive", 0},
		{"choice none", sentiment, `"neutral"`, "I cannot tell", 0},
		{"all passes when every part does", GraderSpec{Type: TypeAll, All: []GraderSpec{
			{Type: TypeContains, Value: json.RawMessage(`"Paris"`)}, {Type: TypeRegex, Value: json.RawMessage(`"\\.$"`)}}}, ``, "It is Paris.", 1},
		{"all fails when one part does", GraderSpec{Type: TypeAll, All: []GraderSpec{
			{Type: TypeContains, Value: json.RawMessage(`"Paris"`)}, {Type: TypeRegex, Value: json.RawMessage(`"\\.$"`)}}}, ``, "It is Paris", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := grade(t, tt.spec, tt.expected, tt.answer)
			if d := cmp.Diff(tt.want, got.Score); d != "" {
				t.Errorf("score (-want +got):\n%s (reason %q)", d, got.Reason)
			}
			if got.Score < 1 && got.Reason == "" {
				t.Error("a failed grade gives no reason")
			}
		})
	}
}

// TestGraderErrors: bad configurations are refused at compile time, naming
// the field (relative to the grader) or the item's expectation.
func TestGraderErrors(t *testing.T) {
	tests := []struct {
		name     string
		spec     GraderSpec
		expected string
		want     specError
	}{
		{"unknown type", GraderSpec{Type: "fuzzy"}, `"x"`, specError{Field: ".type"}},
		{"bad extract", GraderSpec{Type: TypeExact, Extract: `(unclosed`}, `"x"`, specError{Field: ".extract"}},
		{"negative tolerance", GraderSpec{Type: TypeNumeric, Tolerance: -1}, `1`, specError{Field: ".tolerance"}},
		{"NaN tolerance", GraderSpec{Type: TypeNumeric, RelTolerance: math.NaN()}, `1`, specError{Field: ".tolerance"}},
		{"choice without labels", GraderSpec{Type: TypeChoice}, `"a"`, specError{Field: ".labels"}},
		{"choice duplicate labels", GraderSpec{Type: TypeChoice, Labels: []string{"A", "a."}}, `"a"`, specError{Field: ".labels[1]"}},
		{"choice expected outside labels", GraderSpec{Type: TypeChoice, Labels: []string{"a", "b"}}, `"c"`, specError{Expected: true}},
		{"bad schema", GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(`{"type":"nope"}`)}, ``, specError{Field: ".schema"}},
		{"schema ref to a file", GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(`{"$ref":"file:///etc/passwd"}`)}, ``, specError{Field: ".schema"}},
		{"schema ref to the network", GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(`{"$ref":"http://127.0.0.1:1/s.json"}`)}, ``, specError{Field: ".schema"}},
		{"schema missing", GraderSpec{Type: TypeJSONSchema}, ``, specError{Expected: true}},
		{"exact without expected", GraderSpec{Type: TypeExact}, ``, specError{Expected: true}},
		{"exact with an object", GraderSpec{Type: TypeExact}, `{"a":1}`, specError{Expected: true}},
		{"exact with an empty list", GraderSpec{Type: TypeExact}, `[]`, specError{Expected: true}},
		{"bad regex expected", GraderSpec{Type: TypeRegex}, `"a(b"`, specError{Expected: true}},
		{"numeric not a number", GraderSpec{Type: TypeNumeric}, `"many"`, specError{Expected: true}},
		{"numeric infinite", GraderSpec{Type: TypeNumeric}, `"1e999"`, specError{Expected: true}},
		{"json_fields not an object", GraderSpec{Type: TypeJSONFields}, `[1]`, specError{Expected: true}},
		{"json_fields empty", GraderSpec{Type: TypeJSONFields}, `{}`, specError{Expected: true}},
		{"judge without rubric", GraderSpec{Type: TypeJudge}, ``, specError{Expected: true}},
		{"all without parts", GraderSpec{Type: TypeAll}, ``, specError{Field: ".all"}},
		{"all part bad", GraderSpec{Type: TypeAll, All: []GraderSpec{{Type: TypeExact, Extract: "("}}}, ``, specError{Field: ".all[0].extract"}},
		{"all parts do not nest", GraderSpec{Type: TypeAll, All: []GraderSpec{{Type: TypeAll}}}, ``, specError{Field: ".all[0].type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compile(tt.spec, json.RawMessage(tt.expected))
			var se *specError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a specError", err)
			}
			got := specError{Field: se.Field, Expected: se.Expected}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s (%s)", d, se.Msg)
			}
			if se.Msg == "" {
				t.Error("no message")
			}
		})
	}
}

// fakeJudge answers with a fixed verdict and keeps what it was asked.
type fakeJudge struct {
	verdict JudgeVerdict
	err     error
	asked   []JudgeRequest
}

func (f *fakeJudge) Judge(_ context.Context, req JudgeRequest) (JudgeVerdict, error) {
	f.asked = append(f.asked, req)
	return f.verdict, f.err
}

func TestJudgeGrader(t *testing.T) {
	prompt := []llm.Message{{Role: "user", Content: llm.TextContent("Write a polite refusal.")}}
	tests := []struct {
		name      string
		spec      GraderSpec
		expected  string
		judge     *fakeJudge
		want      Result
		wantErr   bool
		wantAsked []JudgeRequest
	}{
		{"rubric from expected", GraderSpec{Type: TypeJudge}, `"is polite"`, &fakeJudge{verdict: JudgeVerdict{Score: 0.8, Reason: "mostly"}},
			Result{Score: 0.8, Reason: "mostly"}, false, []JudgeRequest{{Prompt: prompt, Answer: "No, thanks.", Rubric: "is polite"}}},
		{"rubric in the grader, expected as reference", GraderSpec{Type: TypeJudge, Rubric: "matches the reference"}, `"No, thank you."`, &fakeJudge{verdict: JudgeVerdict{Score: 1}},
			Result{Score: 1}, false, []JudgeRequest{{Prompt: prompt, Answer: "No, thanks.", Rubric: "matches the reference", Reference: "No, thank you."}}},
		{"score above 1 refused", GraderSpec{Type: TypeJudge}, `"r"`, &fakeJudge{verdict: JudgeVerdict{Score: 1.5}}, Result{}, true, nil},
		{"negative score refused", GraderSpec{Type: TypeJudge}, `"r"`, &fakeJudge{verdict: JudgeVerdict{Score: -0.1}}, Result{}, true, nil},
		{"NaN refused", GraderSpec{Type: TypeJudge}, `"r"`, &fakeJudge{verdict: JudgeVerdict{Score: math.NaN()}}, Result{}, true, nil},
		{"judge error", GraderSpec{Type: TypeJudge}, `"r"`, &fakeJudge{err: errors.New("upstream down")}, Result{}, true, nil},
		{"long reason cut", GraderSpec{Type: TypeJudge}, `"r"`, &fakeJudge{verdict: JudgeVerdict{Score: 0, Reason: strings.Repeat("é", 400)}},
			Result{Score: 0, Reason: strings.Repeat("é", 250) + "…"}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Suite{Name: "s", Grader: tt.spec, Items: []Item{{ID: "1", Messages: prompt, Expected: json.RawMessage(tt.expected)}}}
			c, err := s.Check(0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Grade(context.Background(), "No, thanks.", tt.judge)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			if tt.wantAsked != nil {
				if d := cmp.Diff(tt.wantAsked, tt.judge.asked); d != "" {
					t.Errorf("judge asked (-want +got):\n%s", d)
				}
			}
		})
	}
	t.Run("no judge configured", func(t *testing.T) {
		s := &Suite{Name: "s", Grader: GraderSpec{Type: TypeJudge}, Items: []Item{{ID: "1", Messages: prompt, Expected: json.RawMessage(`"r"`)}}}
		c, _ := s.Check(0)
		if _, err := c.Grade(context.Background(), "x", nil); !errors.Is(err, ErrNoJudge) {
			t.Errorf("err = %v, want ErrNoJudge", err)
		}
	})
}

func TestParseJudgeReply(t *testing.T) {
	tests := []struct {
		reply   string
		want    JudgeVerdict
		wantErr bool
	}{
		{`{"score": 0.75, "reason": "close"}`, JudgeVerdict{Score: 0.75, Reason: "close"}, false},
		{"```json\n{\"score\": 1, \"reason\": \"ok\"}\n```", JudgeVerdict{Score: 1, Reason: "ok"}, false},
		{`Sure. {"score": 0, "reason": "wrong"} Hope that helps.`, JudgeVerdict{Score: 0, Reason: "wrong"}, false},
		{`{"reason": "no score"}`, JudgeVerdict{}, true},
		{`{"score": 7}`, JudgeVerdict{}, true},
		{`{"score": "high"}`, JudgeVerdict{}, true},
		{`I think it is good.`, JudgeVerdict{}, true},
	}
	for _, tt := range tests {
		got, err := ParseJudgeReply(tt.reply)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err = %v, want error %v", tt.reply, err, tt.wantErr)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%q (-want +got):\n%s", tt.reply, d)
		}
	}
}

func TestJudgeMessages(t *testing.T) {
	got := JudgeMessages(JudgeRequest{Prompt: []llm.Message{{Role: "user", Content: llm.TextContent("Q?")}}, Answer: "A.", Rubric: "R", Reference: "Ref"})
	if len(got) != 2 || got[0].Role != "system" || got[1].Role != "user" {
		t.Fatalf("roles: %+v", got)
	}
	want := "## Task\n[user] Q?\n\n## Answer\nA.\n\n## Rubric\nR\n\n## Reference answer\nRef"
	if d := cmp.Diff(want, got[1].Content.String()); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestSchemaRefStaysInside: a schema's $ref cannot read a local file, even
// a valid schema, so an admin body cannot probe the server's disk.
func TestSchemaRefStaysInside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(path, []byte(`{"type":"string"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(`{"$ref":"file://` + filepath.ToSlash(path) + `"}`)}
	if _, err := compile(spec, nil); err == nil {
		t.Fatal("a $ref to a local file compiled")
	}
	local := GraderSpec{Type: TypeJSONSchema, Schema: json.RawMessage(`{"$defs":{"n":{"type":"number"}},"$ref":"#/$defs/n"}`)}
	if got := grade(t, local, ``, `3`); got.Score != 1 {
		t.Errorf("a $ref inside the schema: %+v", got)
	}
}
