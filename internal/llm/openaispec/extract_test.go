package openaispec

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// -from regenerates testdata from a copy of OpenAI's openai-openapi.json
// (openai/openai-openapi on GitHub): go test ./internal/llm/openaispec -run TestExtract -from PATH
var from = flag.String("from", "", "path of OpenAI's OpenAPI JSON to extract the components from")

// TestExtract copies the Roots components, and what they refer to, verbatim.
func TestExtract(t *testing.T) {
	if *from == "" {
		t.Skip("regenerates testdata only when -from names OpenAI's spec")
	}
	raw, err := os.ReadFile(*from)
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Info       map[string]any `json:"info"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	kept := map[string]json.RawMessage{}
	todo := append([]string(nil), Roots...)
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if _, done := kept[name]; done {
			continue
		}
		s, ok := spec.Components.Schemas[name]
		if !ok {
			t.Fatalf("the spec has no component %q", name)
		}
		kept[name] = s
		var v any
		_ = json.Unmarshal(s, &v)
		todo = append(todo, refs(v)...)
	}
	out, err := json.MarshalIndent(map[string]any{
		"info": map[string]any{"title": spec.Info["title"], "version": spec.Info["version"], "license": spec.Info["license"],
			"x-source": source},
		"components": map[string]any{"schemas": kept},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "openai-openapi.components.json"), append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(kept))
	for n := range kept {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("kept %d components: %s", len(names), strings.Join(names, ", "))
}

// source says where the copy comes from; change it with the copy.
const source = "github.com/openai/openai-openapi at commit f85dbe2 (API version 2.3.0, MIT licence): " +
	"the components below are copied verbatim from its components.schemas by TestExtract"

func refs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["$ref"].(string); ok {
			out = append(out, strings.TrimPrefix(r, "#/components/schemas/"))
		}
		for _, child := range x {
			out = append(out, refs(child)...)
		}
	case []any:
		for _, child := range x {
			out = append(out, refs(child)...)
		}
	}
	return out
}
