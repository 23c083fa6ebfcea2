package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// maxDepth bounds generation through recursive schemas: past it objects get
// only their required members and arrays their fewest items.
const maxDepth = 8

// generator makes a JSON value valid for a JSON schema (the subset that
// structured outputs and tool parameters use: types, properties, required,
// enum and const, items, anyOf/oneOf/allOf, local $ref, string formats and
// length, number bounds). pattern is not honoured.
type generator struct {
	rng    *rand.Rand
	root   map[string]any
	marked bool // the first free-text string carries the sim's marker
}

// valueFor returns a value for schema (raw JSON); an unreadable schema gets an empty object.
func valueFor(schema json.RawMessage, rng *rand.Rand) any {
	var root map[string]any
	if json.Unmarshal(schema, &root) != nil || root == nil {
		return map[string]any{}
	}
	g := &generator{rng: rng, root: root}
	return g.value(root, 0)
}

// jsonFor is valueFor encoded.
func jsonFor(schema json.RawMessage, rng *rand.Rand) string {
	b, _ := json.Marshal(valueFor(schema, rng))
	return string(b)
}

func (g *generator) value(s map[string]any, depth int) any {
	if ref, ok := s["$ref"].(string); ok {
		// A schema that requires itself without end gets null past a bound.
		if target := g.resolve(ref); target != nil && depth <= 4*maxDepth {
			return g.value(target, depth+1)
		}
		return nil
	}
	if c, ok := s["const"]; ok {
		return c
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return e[g.rng.IntN(len(e))]
	}
	if all, ok := s["allOf"].([]any); ok && len(all) > 0 {
		return g.value(g.merge(all), depth)
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if opts, ok := s[k].([]any); ok && len(opts) > 0 {
			// The first option that is not null: a model fills optional fields.
			for _, o := range opts {
				if m, ok := o.(map[string]any); ok && m["type"] != "null" {
					return g.value(m, depth+1)
				}
			}
			m, _ := opts[0].(map[string]any)
			return g.value(m, depth+1)
		}
	}
	switch typeOf(s) {
	case "object":
		return g.object(s, depth)
	case "array":
		return g.array(s, depth)
	case "integer":
		lo, hi := bounds(s, 0, 100)
		lo, hi = math.Ceil(lo), math.Floor(hi)
		if hi < lo {
			return int64(lo)
		}
		return int64(lo) + g.rng.Int64N(int64(hi-lo)+1)
	case "number":
		lo, hi := bounds(s, 0, 100)
		return math.Round((lo+g.rng.Float64()*(hi-lo))*100) / 100
	case "boolean":
		return g.rng.IntN(2) == 1
	case "null":
		return nil
	}
	return g.str(s)
}

// typeOf is the schema's type, the first that is not null when it lists several.
func typeOf(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if x, ok := x.(string); ok && x != "null" {
				return x
			}
		}
		return "null"
	}
	switch {
	case s["properties"] != nil:
		return "object"
	case s["items"] != nil || s["prefixItems"] != nil:
		return "array"
	}
	return "string"
}

func (g *generator) resolve(ref string) map[string]any {
	if !strings.HasPrefix(ref, "#") {
		return nil
	}
	var cur any = g.root
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#"), "/") {
		if part == "" {
			continue
		}
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

// merge folds allOf's schemas into one: their properties and required lists joined.
func (g *generator) merge(all []any) map[string]any {
	out := map[string]any{}
	props := map[string]any{}
	var required []any
	for _, a := range all {
		m, ok := a.(map[string]any)
		if !ok {
			continue
		}
		if ref, ok := m["$ref"].(string); ok {
			if r := g.resolve(ref); r != nil {
				m = r
			}
		}
		for k, v := range m {
			switch k {
			case "properties":
				if p, ok := v.(map[string]any); ok {
					for name, ps := range p {
						props[name] = ps
					}
				}
			case "required":
				r, _ := v.([]any)
				required = append(required, r...)
			default:
				out[k] = v
			}
		}
	}
	if len(props) > 0 {
		out["properties"], out["type"] = props, "object"
	}
	if required != nil {
		out["required"] = required
	}
	return out
}

func (g *generator) object(s map[string]any, depth int) map[string]any {
	props, _ := s["properties"].(map[string]any)
	required := map[string]bool{}
	if r, ok := s["required"].([]any); ok {
		for _, name := range r {
			if name, ok := name.(string); ok {
				required[name] = true
			}
		}
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names) // a seed gives the same answer every time
	out := make(map[string]any, len(names))
	for _, name := range names {
		ps, _ := props[name].(map[string]any)
		if depth >= maxDepth && !required[name] {
			continue
		}
		out[name] = g.value(ps, depth+1)
	}
	// Required members the schema does not describe still need a value.
	for name := range required {
		if _, ok := out[name]; !ok {
			out[name] = g.str(nil)
		}
	}
	return out
}

func (g *generator) array(s map[string]any, depth int) []any {
	lo, hi := 0, 3
	if v, ok := s["minItems"].(float64); ok {
		lo = int(v)
	}
	if v, ok := s["maxItems"].(float64); ok {
		hi = int(v)
	}
	lo, hi = min(lo, 64), min(max(hi, lo), 64)
	n := lo
	if depth < maxDepth && n < 1 && hi >= 1 {
		n = 1
	}
	out := make([]any, 0, n)
	prefix, _ := s["prefixItems"].([]any)
	items, _ := s["items"].(map[string]any)
	for i := 0; i < n || i < len(prefix) && depth < maxDepth; i++ {
		if i < len(prefix) {
			ps, _ := prefix[i].(map[string]any)
			out = append(out, g.value(ps, depth+1))
			continue
		}
		out = append(out, g.value(items, depth+1))
	}
	return out
}

// bounds reads minimum and maximum (exclusive ones nudged inside), with defaults.
func bounds(s map[string]any, lo, hi float64) (float64, float64) {
	if v, ok := s["minimum"].(float64); ok {
		lo = v
	}
	if v, ok := s["exclusiveMinimum"].(float64); ok {
		lo = v + 1
	}
	if v, ok := s["maximum"].(float64); ok {
		hi = v
	} else if lo > hi {
		hi = lo + 100
	}
	if v, ok := s["exclusiveMaximum"].(float64); ok {
		hi = v - 1
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// formats are fixed, valid examples of the string formats models are asked for.
var formats = map[string]string{
	"date-time": "2026-05-01T08:30:00Z",
	"date":      "2026-05-01",
	"time":      "08:30:00Z",
	"duration":  "PT1H30M",
	"email":     "tide@example.com",
	"hostname":  "gate.example.com",
	"ipv4":      "192.0.2.7",
	"ipv6":      "2001:db8::7",
	"uri":       "https://example.com/tide",
	"url":       "https://example.com/tide",
}

func (g *generator) str(s map[string]any) string {
	format, _ := s["format"].(string)
	if v, ok := formats[format]; ok {
		return v
	}
	if format == "uuid" {
		return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", g.rng.Uint32(), g.rng.IntN(1<<16), g.rng.IntN(1<<12), g.rng.IntN(1<<12), g.rng.Uint64()&(1<<48-1))
	}
	lo, hi := 0, 40
	if v, ok := s["minLength"].(float64); ok {
		lo = int(v)
	}
	if v, ok := s["maxLength"].(float64); ok {
		hi = int(v)
	}
	var b strings.Builder
	if !g.marked && hi >= len(Marker)+6 {
		g.marked = true
		b.WriteString(Marker)
	}
	for b.Len() < max(lo, 1) || b.Len() < 12 && b.Len() < hi {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[g.rng.IntN(len(words))])
	}
	out := strings.TrimSpace(b.String())
	for len(out) < lo {
		out += "a"
	}
	if len(out) > hi {
		out = strings.TrimSpace(out[:hi])
		for len(out) < lo {
			out += "a"
		}
	}
	return out
}
