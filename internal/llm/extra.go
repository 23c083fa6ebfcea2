package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fields is the set of top-level member names a request type reads.
type Fields struct {
	names  map[string]bool
	folded map[string]string // foldName(name) → name
}

// FieldsOf lists the JSON names of a struct's fields, for splitting off unknown ones.
func FieldsOf(v any) *Fields {
	t := reflect.TypeOf(v)
	f := &Fields{names: make(map[string]bool, t.NumField()), folded: make(map[string]string, t.NumField())}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			f.names[name] = true
			f.folded[foldName(name)] = name
		}
	}
	return f
}

// Immutable lookup tables, built once.
var (
	chatRequestFields      = FieldsOf(chatRequestAlias{})
	embeddingRequestFields = FieldsOf(embeddingRequestAlias{})
	imageRequestFields     = FieldsOf(imageRequestAlias{})
	imageResponseFields    = FieldsOf(imageResponseAlias{})
)

// decodeWithExtra decodes data into v and returns the top-level members v has no field for.
func decodeWithExtra(data []byte, v any, known *Fields) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	return SplitMembers(data, known)
}

// SplitMembers returns the top-level members of a JSON object (valid JSON:
// decode it first) whose names are not in known. A member tidegate reads
// must appear once and in its own spelling: Go's decoder matches names
// without regard to case, and upstreams differ on which duplicate wins, so a
// second "model", a "MODEL" or a "ſtream" could make tidegate check one
// value while an upstream serves another. Those are refused (*FieldError,
// code duplicate_field). Unknown members pass whatever their spelling.
func SplitMembers(data []byte, known *Fields) (map[string]json.RawMessage, error) {
	var extra map[string]json.RawMessage
	var seen map[string]bool
	err := eachMember(data, func(name string, raw []byte) error {
		if known.names[name] {
			if seen[name] {
				return duplicateField(name, name)
			}
			if seen == nil {
				seen = make(map[string]bool, len(known.names))
			}
			seen[name] = true
			return nil
		}
		if field, ok := known.folded[foldName(name)]; ok {
			return duplicateField(name, field)
		}
		if extra == nil {
			extra = make(map[string]json.RawMessage)
		}
		extra[name] = append(json.RawMessage(nil), raw...)
		return nil
	})
	return extra, err
}

// foldName folds a member name as encoding/json does when it matches names
// to fields (bytes.EqualFold's rule: "K" (Kelvin) and "ſ" match "k" and "s"):
// each rune becomes the smallest of its case orbit, which for ASCII is upper case.
func foldName(name string) string {
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(name)
	}
	var b strings.Builder
	for _, r := range name {
		for { // the smallest rune of r's fold orbit
			next := unicode.SimpleFold(r)
			if next <= r {
				r = next
				break
			}
			r = next
		}
		b.WriteRune(r)
	}
	return b.String()
}

func duplicateField(name, field string) *FieldError {
	if name == field {
		return &FieldError{Param: name, Code: "duplicate_field", Message: fmt.Sprintf("%s appears more than once", name)}
	}
	return &FieldError{Param: name, Code: "duplicate_field",
		Message: fmt.Sprintf("%q is another spelling of %q: a field tidegate reads must be spelt exactly, once", name, field)}
}

// FieldError is a client's request that names a field wrongly or holds a
// number out of bounds; Param names the field as the client sent it.
type FieldError struct {
	Param, Code, Message string
}

func (e *FieldError) Error() string { return e.Message }

// eachMember calls fn with each top-level member of a JSON object, in order,
// duplicates included, names unescaped. data must be valid JSON; anything
// but an object has no members.
func eachMember(data []byte, fn func(name string, raw []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil
	}
	i++
	for {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] == '}' {
			return nil
		}
		if data[i] == ',' {
			i++
			continue
		}
		end := endOfString(data, i)
		name := string(data[i+1 : end-1])
		if strings.IndexByte(name, '\\') >= 0 {
			if err := json.Unmarshal(data[i:end], &name); err != nil {
				return err
			}
		}
		i = skipSpace(data, end) + 1 // past the colon
		i = skipSpace(data, i)
		vend := endOfValue(data, i)
		if err := fn(name, data[i:vend]); err != nil {
			return err
		}
		i = vend
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the string starting at data[i].
func endOfString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// endOfValue returns the index just past the value starting at data[i].
func endOfValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return endOfString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = endOfString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(data)
	}
	for i < len(data) && !strings.ContainsRune(",}] \t\r\n", rune(data[i])) {
		i++
	}
	return i
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
