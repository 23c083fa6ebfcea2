package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/eval"
)

// TestEvalCommand: tidegate eval add/list/show/delete on a SQLite store
// named by a config file; a bad file is refused naming its line and field,
// and leaves nothing stored.
func TestEvalCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tidegate.yaml")
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("tidegate.yaml", "store: sqlite:"+filepath.Join(dir, "t.db")+"\nproviders: [{name: sim, type: sim}]\n")
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := Main(context.Background(), append(append([]string{"eval"}, args...), "--config", cfg), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	native := write("math.jsonl", `{"id":"a","messages":[{"role":"user","content":"2+2?"}],"expected":"4","tags":["arith"]}`+"\n"+
		`{"id":"b","messages":[{"role":"user","content":"3+3?"}],"expected":6,"grader":{"type":"numeric"},"tags":["arith"]}`+"\n")
	promptfoo := write("pf.yaml", "prompts: ['Q: {{q}}']\ntests:\n  - vars: {q: hi}\n    assert: [{type: icontains, value: hello}]\n")
	badLine := write("bad.jsonl", `{"id":"a","messages":[{"role":"user","content":"x"}],"expected":"4"}`+"\n"+
		`{"id":"b","messages":[{"role":"user","content":"y"}],"expected":"4","grader":{"type":"exact","extract":"(unclosed"}}`+"\n")

	steps := []struct {
		name     string
		args     []string
		code     int
		out, err string // substrings
	}{
		{"add native, flags after the arguments", []string{"add", "math", native, "--grader", "exact", "--extract", `Answer:\s*(.+)`}, 0, "suite math: 2 items, grader exact; tags: arith 2", ""},
		{"add promptfoo", []string{"add", "greet", promptfoo}, 0, "suite greet: 1 items, grader exact", ""},
		{"a bad file names line and field", []string{"add", "broken", badLine}, 1, "", `bad.jsonl: line 2: item "b": field grader.extract: bad regex`},
		{"a bad suite grader", []string{"add", "broken", native, "--grader", "fuzzy"}, 1, "", `field grader.type: unknown grader "fuzzy"`},
		{"a taken name", []string{"add", "math", native}, 1, "", `a suite named "math" exists`},
		{"replace", []string{"add", "--replace", "math", native, "--extract", `Answer:\s*(.+)`}, 0, "suite math: 2 items", ""},
		{"builtin", []string{"add", "demo", "--builtin"}, 0, "suite demo: 40 items, grader exact; tags: arithmetic 10, classification 10, extraction 10, short_answer 10", ""},
		{"list", []string{"list"}, 0, "demo", ""},
		{"show", []string{"show", "math"}, 0, "a   exact    arith  2+2?", ""},
		{"delete", []string{"delete", "greet"}, 0, "suite greet deleted", ""},
		{"delete again", []string{"delete", "greet"}, 1, "", `no suite named "greet"`},
		{"missing file", []string{"add", "x", filepath.Join(dir, "nope.jsonl")}, 1, "", "no such file"},
		{"usage", []string{"add", "onlyname"}, 1, "", "usage:"},
	}
	for _, st := range steps {
		code, out, errOut := run(st.args...)
		if code != st.code || !strings.Contains(out, st.out) || !strings.Contains(errOut, st.err) {
			t.Errorf("%s: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stdout ∋ %q, stderr ∋ %q", st.name, code, st.code, out, errOut, st.out, st.err)
		}
	}

	code, out, _ := run("list", "--json")
	var list []eval.Summary
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("list --json: %d %v %s", code, err, out)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	if d := cmp.Diff([]string{"demo", "math"}, names); d != "" {
		t.Errorf("stored suites (-want +got):\n%s (the refused ones must not be there)", d)
	}

	code, out, _ = run("show", "math", "--json")
	var su eval.Suite
	if err := json.Unmarshal([]byte(out), &su); code != 0 || err != nil {
		t.Fatalf("show --json: %d %v %s", code, err, out)
	}
	if d := cmp.Diff(eval.GraderSpec{Type: "exact", Extract: `Answer:\s*(.+)`}, su.Grader); d != "" {
		t.Errorf("the replaced suite lost its grader? (-want +got):\n%s", d)
	}
	if len(su.Items) != 2 || su.Items[1].Grader.Type != eval.TypeNumeric {
		t.Errorf("show --json items: %+v", su.Items)
	}
}
