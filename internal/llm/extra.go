package llm

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// jsonKeys lists the JSON names of a struct's fields, for splitting off unknown ones.
func jsonKeys(v any) map[string]bool {
	t := reflect.TypeOf(v)
	keys := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

// Immutable lookup tables, built once.
var (
	chatRequestKeys      = jsonKeys(chatRequestAlias{})
	embeddingRequestKeys = jsonKeys(embeddingRequestAlias{})
	imageRequestKeys     = jsonKeys(imageRequestAlias{})
)

// decodeWithExtra decodes data into v and returns the top-level members v has no field for.
func decodeWithExtra(data []byte, v any, known map[string]bool) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	var extra map[string]json.RawMessage
	for k, raw := range all {
		if known[k] {
			continue
		}
		if extra == nil {
			extra = make(map[string]json.RawMessage)
		}
		extra[k] = raw
	}
	return extra, nil
}

// encodeWithExtra marshals v and appends the extra members after its own.
func encodeWithExtra(v any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var buf bytes.Buffer
	buf.Grow(len(b) + 64*len(extra))
	buf.Write(b[:len(b)-1])
	for k, raw := range extra {
		if len(raw) == 0 {
			continue
		}
		buf.WriteByte(',')
		key, _ := json.Marshal(k)
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(raw)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// routingKey reports whether a member name would redirect a request or swap its
// credentials (base_url, api_base, api_key in any case or separator style).
func routingKey(k string) bool {
	n := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(k))
	switch n {
	case "baseurl", "apibase", "apikey":
		return true
	}
	return false
}

// StripRoutingFields removes base_url, api_base and api_key members, at any
// depth, from the extra members. A request body never chooses where a call
// goes or whose key it uses. It reports how many members it removed.
func StripRoutingFields(extra map[string]json.RawMessage) int {
	removed := 0
	for k, raw := range extra {
		if routingKey(k) {
			delete(extra, k)
			removed++
			continue
		}
		if !mayHideRoutingKey(raw) {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			continue
		}
		if n := stripValue(v); n > 0 {
			removed += n
			extra[k], _ = json.Marshal(v)
		}
	}
	return removed
}

// mayHideRoutingKey is a cheap pre-check: nested values are decoded only when a
// key could be inside (escaped names included).
func mayHideRoutingKey(raw json.RawMessage) bool {
	if len(raw) == 0 || (raw[0] != '{' && raw[0] != '[') {
		return false
	}
	l := bytes.ToLower(raw)
	return bytes.Contains(l, []byte("base")) || bytes.Contains(l, []byte("key")) || bytes.Contains(raw, []byte(`\u`))
}

func stripValue(v any) int {
	removed := 0
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if routingKey(k) {
				delete(x, k)
				removed++
				continue
			}
			removed += stripValue(child)
		}
	case []any:
		for _, child := range x {
			removed += stripValue(child)
		}
	}
	return removed
}
