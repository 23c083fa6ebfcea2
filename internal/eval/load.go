package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tidegate/tidegate/internal/llm"
)

// Formats of suite files.
const (
	FormatNative    = "native"    // JSONL, one item a line
	FormatOpenAI    = "openai"    // OpenAI Evals JSONL: {"input": [messages], "ideal": "…"}
	FormatPromptfoo = "promptfoo" // YAML or JSON: tests with vars and assert
)

// Options steer Parse.
type Options struct {
	Format string // "" detects it from the name and the content
	// Prompt is promptfoo's prompt template ({{var}}), for a file with no prompts.
	Prompt string
}

// Parsed is a file's items, with the line each starts on.
type Parsed struct {
	Items []Item
	Lines []int
}

// Parse reads a suite file. Errors name the line and the field.
func Parse(filename string, data []byte, opt Options) (*Parsed, error) {
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	format := opt.Format
	if format == "" {
		format = detect(filename, data)
	}
	switch format {
	case FormatNative:
		return parseLines(data, nativeLine)
	case FormatOpenAI:
		return parseLines(data, openAILine)
	case FormatPromptfoo:
		return parsePromptfoo(data, opt.Prompt)
	}
	return nil, &Error{Index: -1, Field: "format", Msg: fmt.Sprintf("want %s, %s or %s, got %q", FormatNative, FormatOpenAI, FormatPromptfoo, format)}
}

// detect: YAML and JSON files are promptfoo's; JSONL is OpenAI Evals' when
// its first line has "input" and no "messages", else ours.
func detect(filename string, data []byte) string {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".yaml", ".yml", ".json":
		return FormatPromptfoo
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var keys map[string]json.RawMessage
		if json.Unmarshal(line, &keys) == nil && keys["input"] != nil && keys["messages"] == nil {
			return FormatOpenAI
		}
		break
	}
	return FormatNative
}

// parseLines reads JSONL, one item a non-blank line.
func parseLines(data []byte, read func(line []byte, n int) (Item, *Error)) (*Parsed, error) {
	p := &Parsed{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(p.Items) == MaxItems {
			return nil, &Error{Line: i + 1, Index: -1, Msg: fmt.Sprintf("more than %d items", MaxItems)}
		}
		it, err := read(line, i+1)
		if err != nil {
			err.Line, err.Index = i+1, len(p.Items)
			return nil, err
		}
		p.Items = append(p.Items, it)
		p.Lines = append(p.Lines, i+1)
	}
	return p, nil
}

// nativeLine reads one of our items; an item without an id is named by its line.
func nativeLine(line []byte, n int) (Item, *Error) {
	var it Item
	if err := DecodeStrict(line, &it); err != nil {
		return it, jsonError(err)
	}
	if it.ID == "" {
		it.ID = strconv.Itoa(n)
	}
	return it, nil
}

// openAILine reads an OpenAI Evals sample; other fields (metadata) are
// theirs and left alone.
func openAILine(line []byte, n int) (Item, *Error) {
	var s struct {
		Input json.RawMessage `json:"input"`
		Ideal json.RawMessage `json:"ideal"`
	}
	if err := json.Unmarshal(line, &s); err != nil {
		return Item{}, jsonError(err)
	}
	it := Item{ID: strconv.Itoa(n), Expected: s.Ideal}
	switch in := bytes.TrimSpace(s.Input); {
	case len(in) == 0 || string(in) == "null":
		return it, &Error{Field: "input", Msg: "a sample needs its input"}
	case in[0] == '"':
		var text string
		_ = json.Unmarshal(in, &text)
		it.Messages = []llm.Message{{Role: "user", Content: llm.TextContent(text)}}
	default:
		if err := json.Unmarshal(in, &it.Messages); err != nil {
			return it, &Error{Field: "input", Msg: "want a list of chat messages or a string"}
		}
	}
	if ideal := bytes.TrimSpace(s.Ideal); len(ideal) == 0 || string(ideal) == "null" {
		return it, &Error{Field: "ideal", Msg: "a sample needs its ideal answer"}
	}
	return it, nil
}

// promptfoo's file shapes: a config with tests (and prompts, defaultTest),
// or a bare list of tests.
type pfTest struct {
	Vars   map[string]any `yaml:"vars"`
	Assert []pfAssert     `yaml:"assert"`
}

type pfAssert struct {
	Type  string `yaml:"type"`
	Value any    `yaml:"value"`
}

var templateVar = regexp.MustCompile(`{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}`)

func parsePromptfoo(data []byte, prompt string) (*Parsed, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Index: -1, Msg: fmt.Sprintf("not YAML or JSON: %v", err)}
	}
	if len(root.Content) == 0 {
		return nil, &Error{Index: -1, Msg: "the file is empty"}
	}
	doc := root.Content[0]
	tests, defaults := doc, pfTest{}
	if doc.Kind == yaml.MappingNode {
		tests = nil
		for i := 0; i+1 < len(doc.Content); i += 2 {
			k, v := doc.Content[i], doc.Content[i+1]
			switch k.Value {
			case "tests":
				tests = v
			case "defaultTest":
				if err := v.Decode(&defaults); err != nil {
					return nil, &Error{Line: v.Line, Index: -1, Field: "defaultTest", Msg: err.Error()}
				}
			case "prompts":
				if prompt != "" {
					continue // the caller's template wins
				}
				p, err := pfPrompt(v)
				if err != nil {
					return nil, err
				}
				prompt = p
			}
		}
	}
	if tests == nil || tests.Kind != yaml.SequenceNode {
		line := doc.Line
		if tests != nil {
			line = tests.Line
		}
		return nil, &Error{Line: line, Index: -1, Field: "tests", Msg: "want a list of tests (tests from other files are not read)"}
	}
	p := &Parsed{}
	for i, node := range tests.Content {
		if i == MaxItems {
			return nil, &Error{Line: node.Line, Index: -1, Msg: fmt.Sprintf("more than %d tests", MaxItems)}
		}
		it, err := pfItem(node, i, prompt, defaults)
		if err != nil {
			err.Line, err.Index, err.Item = node.Line, i, strconv.Itoa(i+1)
			return nil, err
		}
		p.Items = append(p.Items, it)
		p.Lines = append(p.Lines, node.Line)
	}
	return p, nil
}

func pfPrompt(v *yaml.Node) (string, *Error) {
	var prompts []any
	if err := v.Decode(&prompts); err != nil {
		return "", &Error{Line: v.Line, Index: -1, Field: "prompts", Msg: "want a list of prompts"}
	}
	if len(prompts) != 1 {
		return "", &Error{Line: v.Line, Index: -1, Field: "prompts", Msg: "a suite takes one prompt: keep one, or pass --prompt"}
	}
	text, ok := prompts[0].(string)
	if m, isMap := prompts[0].(map[string]any); isMap {
		text, ok = m["raw"].(string)
	}
	if !ok || strings.HasPrefix(text, "file://") {
		return "", &Error{Line: v.Line, Index: -1, Field: "prompts[0]", Msg: "want the prompt's text (prompts from files are not read; pass --prompt)"}
	}
	return text, nil
}

func pfItem(node *yaml.Node, i int, prompt string, defaults pfTest) (Item, *Error) {
	var t pfTest
	if err := node.Decode(&t); err != nil {
		return Item{}, &Error{Msg: fmt.Sprintf("not a test: %v", err)}
	}
	vars := map[string]any{}
	for k, v := range defaults.Vars {
		vars[k] = v
	}
	for k, v := range t.Vars {
		vars[k] = v
	}
	it := Item{ID: strconv.Itoa(i + 1)}
	text, err := pfRender(prompt, vars)
	if err != nil {
		return it, err
	}
	it.Messages = pfMessages(text)
	asserts := append(append([]pfAssert{}, defaults.Assert...), t.Assert...)
	if len(asserts) == 0 {
		return it, &Error{Field: "assert", Msg: "a test needs at least one assertion"}
	}
	var parts []GraderSpec
	for j, a := range asserts {
		spec, err := pfGrader(a)
		if err != nil {
			err.Field = fmt.Sprintf("assert[%d]%s", j, err.Field)
			return it, err
		}
		parts = append(parts, spec)
	}
	if len(parts) == 1 {
		// One assertion: its value is the item's expected answer.
		g := parts[0]
		it.Expected, g.Value = g.Value, nil
		it.Grader = &g
	} else {
		it.Grader = &GraderSpec{Type: TypeAll, All: parts}
	}
	return it, nil
}

// pfRender fills a prompt template; with no template, a test of one var is
// that var's text.
func pfRender(prompt string, vars map[string]any) (string, *Error) {
	if prompt == "" {
		if len(vars) != 1 {
			return "", &Error{Field: "vars", Msg: "no prompt template: the file has no prompts (pass --prompt), and the test has not exactly one var"}
		}
		for _, v := range vars {
			return varText(v), nil
		}
	}
	var missing string
	out := templateVar.ReplaceAllStringFunc(prompt, func(m string) string {
		name := templateVar.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = name
			return m
		}
		return varText(v)
	})
	if missing != "" {
		return "", &Error{Field: "vars." + missing, Msg: "the prompt uses this var and the test does not set it"}
	}
	return out, nil
}

func varText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// pfMessages: a prompt that renders to a JSON list of chat messages is that
// conversation (promptfoo's chat format); anything else is one user message.
func pfMessages(text string) []llm.Message {
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "[") {
		var ms []llm.Message
		if json.Unmarshal([]byte(t), &ms) == nil && len(ms) > 0 && ms[0].Role != "" {
			return ms
		}
	}
	return []llm.Message{{Role: "user", Content: llm.TextContent(text)}}
}

// pfGrader maps one promptfoo assertion to a grader with its value.
func pfGrader(a pfAssert) (GraderSpec, *Error) {
	value := func() (json.RawMessage, *Error) {
		switch v := a.Value.(type) {
		case nil:
			return nil, &Error{Field: ".value", Msg: "this assertion needs a value"}
		case string, int, float64, bool:
			b, _ := json.Marshal(varText(v))
			return b, nil
		}
		return nil, &Error{Field: ".value", Msg: fmt.Sprintf("%s takes a string value", a.Type)}
	}
	spec := GraderSpec{}
	switch a.Type {
	case "equals":
		spec.Type = TypeExact
	case "contains":
		spec.Type = TypeContains
	case "icontains":
		spec.Type, spec.IgnoreCase = TypeContains, true
	case "regex":
		spec.Type = TypeRegex
	case "llm-rubric":
		spec.Type = TypeJudge
	case "is-json":
		spec.Type, spec.Schema = TypeJSONSchema, json.RawMessage(`{}`)
		switch v := a.Value.(type) {
		case nil:
		case string: // a schema written as JSON text
			spec.Schema = json.RawMessage(v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return spec, &Error{Field: ".value", Msg: "the schema is not JSON"}
			}
			spec.Schema = b
		}
		return spec, nil
	default:
		return spec, &Error{Field: ".type", Msg: fmt.Sprintf("assertion %q is not supported (equals, contains, icontains, regex, is-json, llm-rubric are)", a.Type)}
	}
	v, err := value()
	if err != nil {
		return spec, err
	}
	if spec.Type == TypeJudge {
		_ = json.Unmarshal(v, &spec.Rubric)
		return spec, nil
	}
	spec.Value = v
	return spec, nil
}
