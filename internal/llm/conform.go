package llm

import (
	"bytes"
	"encoding/json"
)

// ConformChatResponse returns an upstream's chat answer, relayed as its
// bytes, with what OpenAI's spec requires and OpenAI-compatible vendors
// leave out or send as null put right: a choice's logprobs and a message's
// refusal present (null when absent), and no null where the spec wants a
// value (system_fingerprint, tool_calls, usage details). Everything else is
// kept as it came. raw must be a JSON object; anything else is returned as is.
func ConformChatResponse(raw []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil || top == nil {
		return raw
	}
	changed := dropNull(top, "system_fingerprint")
	var choices []map[string]json.RawMessage
	if json.Unmarshal(top["choices"], &choices) == nil {
		for _, ch := range choices {
			if ch == nil {
				continue
			}
			changed = ensure(ch, "logprobs") || changed
			var msg map[string]json.RawMessage
			if json.Unmarshal(ch["message"], &msg) != nil || msg == nil {
				continue
			}
			if m := ensure(msg, "refusal"); dropNull(msg, "tool_calls") || m {
				ch["message"], _ = json.Marshal(msg)
				changed = true
			}
		}
		if changed {
			top["choices"], _ = json.Marshal(choices)
		}
	}
	var usage map[string]json.RawMessage
	if json.Unmarshal(top["usage"], &usage) == nil && usage != nil {
		if p := dropNull(usage, "prompt_tokens_details"); dropNull(usage, "completion_tokens_details") || p {
			top["usage"], _ = json.Marshal(usage)
			changed = true
		}
	}
	if !changed {
		return raw
	}
	out, err := json.Marshal(top)
	if err != nil {
		return raw
	}
	return out
}

// ensure adds member name as null when it is missing, and reports whether it did.
func ensure(obj map[string]json.RawMessage, name string) bool {
	if _, ok := obj[name]; ok {
		return false
	}
	obj[name] = json.RawMessage("null")
	return true
}

// dropNull removes member name when it is null, and reports whether it did.
func dropNull(obj map[string]json.RawMessage, name string) bool {
	if v, ok := obj[name]; ok && bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		delete(obj, name)
		return true
	}
	return false
}

// HasNullMember reports whether a JSON text has a member name whose value is
// null, at any depth: a cheap scan for the few nulls OpenAI-compatible
// vendors send where OpenAI's spec wants a value (a chunk's
// system_fingerprint), so only those chunks are re-encoded.
func HasNullMember(raw []byte, name string) bool {
	key := []byte(`"` + name + `"`)
	for {
		i := bytes.Index(raw, key)
		if i < 0 {
			return false
		}
		raw = raw[i+len(key):]
		j := skipSpace(raw, 0)
		if j < len(raw) && raw[j] == ':' && bytes.HasPrefix(raw[skipSpace(raw, j+1):], []byte("null")) {
			return true
		}
	}
}
