package responses

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// schemas are the Responses schemas of OpenAI's published OpenAPI
// description (testdata/openai-responses-schemas.json names its source).
type schemas map[string]map[string]any

func loadSchemas(t *testing.T) schemas {
	t.Helper()
	b, err := os.ReadFile("testdata/openai-responses-schemas.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Schemas schemas `json:"schemas"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Schemas
}

// conform checks a JSON value against a named schema: types, enums,
// required members, and no member the schema does not name. It is the
// subset of JSON Schema the spec's Responses schemas use; a $ref to a
// schema not copied into testdata accepts anything.
func (s schemas) conform(name string, data []byte) []string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return []string{err.Error()}
	}
	return s.check(name, map[string]any{"$ref": "#/components/schemas/" + name}, v, true)
}

func (s schemas) resolve(schema map[string]any) (map[string]any, bool) {
	for {
		ref, ok := schema["$ref"].(string)
		if !ok {
			return schema, true
		}
		next, found := s[strings.TrimPrefix(ref, "#/components/schemas/")]
		if !found {
			return nil, false
		}
		schema = next
	}
}

// members lists the member names a schema allows, allOf branches included.
func (s schemas) members(schema map[string]any) (names []string, open bool) {
	schema, ok := s.resolve(schema)
	if !ok {
		return nil, true
	}
	if props, ok := schema["properties"].(map[string]any); ok {
		for k := range props {
			names = append(names, k)
		}
	} else if _, ok := schema["allOf"]; !ok {
		open = true
	}
	for _, b := range list(schema["allOf"]) {
		n, o := s.members(b)
		names, open = append(names, n...), open || o
	}
	return names, open
}

func list(v any) []map[string]any {
	var out []map[string]any
	xs, _ := v.([]any)
	for _, x := range xs {
		out = append(out, x.(map[string]any))
	}
	return out
}

func (s schemas) check(path string, schema map[string]any, v any, strict bool) []string {
	schema, ok := s.resolve(schema)
	if !ok {
		return nil
	}
	var errs []string
	if alts, ok := schema["anyOf"]; ok {
		errs = append(errs, s.oneOf(path, list(alts), v)...)
	}
	if alts, ok := schema["oneOf"]; ok {
		errs = append(errs, s.oneOf(path, list(alts), v)...)
	}
	if all, ok := schema["allOf"]; ok {
		for _, b := range list(all) {
			errs = append(errs, s.check(path, b, v, false)...)
		}
	}
	if typ, ok := schema["type"].(string); ok && !hasType(typ, v) {
		return append(errs, fmt.Sprintf("%s: %v is not of type %s", path, v, typ))
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", path, v, enum))
	}
	switch x := v.(type) {
	case map[string]any:
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[r.(string)]; !ok {
					errs = append(errs, fmt.Sprintf("%s: required member %q is missing", path, r))
				}
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, mv := range x {
			if p, ok := props[k].(map[string]any); ok {
				errs = append(errs, s.check(path+"."+k, p, mv, true)...)
			}
		}
		if strict {
			names, open := s.members(schema)
			if _, extra := schema["additionalProperties"]; !open && !extra {
				for k := range x {
					if !slices.Contains(names, k) {
						errs = append(errs, fmt.Sprintf("%s: member %q is not in the schema", path, k))
					}
				}
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, it := range x {
				errs = append(errs, s.check(fmt.Sprintf("%s[%d]", path, i), items, it, true)...)
			}
		}
	}
	sort.Strings(errs)
	return errs
}

// oneOf passes when an alternative does; with a "type" member, only the
// alternatives naming that type are tried, so errors point at the right one.
func (s schemas) oneOf(path string, alts []map[string]any, v any) []string {
	var best []string
	for _, a := range alts {
		r, ok := s.resolve(a)
		if !ok {
			continue
		}
		if obj, isObj := v.(map[string]any); isObj {
			if typ, has := obj["type"]; has {
				if props, ok := r["properties"].(map[string]any); ok {
					if tp, ok := props["type"].(map[string]any); ok {
						if enum, ok := tp["enum"].([]any); ok && !slices.Contains(enum, typ) {
							continue
						}
					}
				}
			}
		}
		errs := s.check(path, a, v, true)
		if len(errs) == 0 {
			return nil
		}
		if best == nil || len(errs) < len(best) {
			best = errs
		}
	}
	if best == nil {
		return []string{fmt.Sprintf("%s: %v matches no alternative", path, v)}
	}
	return best
}

func hasType(typ string, v any) bool {
	switch x := v.(type) {
	case nil:
		return typ == "null"
	case string:
		return typ == "string"
	case bool:
		return typ == "boolean"
	case float64:
		return typ == "number" || typ == "integer" && x == float64(int64(x))
	case []any:
		return typ == "array"
	case map[string]any:
		return typ == "object"
	}
	return false
}

// TestConformChecks: the checker itself catches what it is for.
func TestConformChecks(t *testing.T) {
	s := loadSchemas(t)
	tests := []struct {
		name, schema, doc string
		bad               bool
	}{
		{"whole usage", "ResponseUsage", `{"input_tokens":1,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":3}`, false},
		{"missing member", "ResponseUsage", `{"input_tokens":1,"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":3}`, true},
		{"unknown member", "OutputTextContent", `{"type":"output_text","text":"x","annotations":[],"logprobs":[],"extra":1}`, true},
		{"wrong type", "FunctionToolCall", `{"type":"function_call","call_id":"c","name":"f","arguments":{}}`, true},
		{"wrong enum", "OutputMessage", `{"id":"m","type":"message","role":"user","content":[],"status":"completed"}`, true},
		{"item chosen by type", "OutputItem", `{"type":"function_call","call_id":"c","name":"f","arguments":"{}","id":"fc","status":"completed"}`, false},
		{"no item of that type", "OutputItem", `{"type":"nonsense"}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := s.conform(tc.schema, []byte(tc.doc))
			if (len(errs) > 0) != tc.bad {
				t.Errorf("errors %v, want bad=%v", errs, tc.bad)
			}
		})
	}
}
