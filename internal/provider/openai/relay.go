package openai

import (
	"bytes"
	"encoding/json"

	"github.com/tidegate/tidegate/internal/llm"
)

// scanChunk fills chunk with what a byte relay reads of an upstream chunk —
// each choice's index, output and finish reason — by a scan, without
// decoding the rest, and points its Raw at data. It returns false for a
// chunk that must be decoded whole: one with usage (the gateway may strip
// it), an error, no choices, a missing object type or a null
// system_fingerprint (both re-encoded), or anything it does not expect.
func (s *stream) scanChunk(data []byte) bool {
	s.choices, s.nstrs = s.choices[:0], 0
	object, choices := false, false
	ok := llm.Members(data, func(key, v []byte) bool {
		switch string(key) {
		case "object":
			str, isStr := llm.RawString(v)
			object = isStr && str != ""
			return true
		case "system_fingerprint":
			return string(v) != "null"
		case "usage", "error":
			return string(v) == "null"
		case "choices":
			choices = true
			return llm.Elements(v, s.scanChoice)
		}
		return !foldsTo(key, "object", "system_fingerprint", "usage", "error", "choices")
	})
	if !ok || !object || !choices {
		return false
	}
	s.chunk = llm.ChatChunk{Object: "chat.completion.chunk", Choices: s.choices, Raw: data}
	return true
}

// scanChoice reads one choice of a chunk into s.choices.
func (s *stream) scanChoice(v []byte) bool {
	var ch llm.ChunkChoice
	ok := llm.Members(v, func(key, v []byte) bool {
		switch string(key) {
		case "index":
			var isInt bool
			ch.Index, isInt = llm.RawInt(v)
			return isInt
		case "finish_reason":
			return s.optString(v, &ch.FinishReason)
		case "delta":
			return llm.Members(v, func(key, v []byte) bool {
				d := &ch.Delta
				switch string(key) {
				case "role":
					var isStr bool
					d.Role, isStr = llm.RawString(v)
					return isStr || string(v) == "null"
				case "content":
					return s.optString(v, &d.Content)
				case "reasoning_content":
					return s.optString(v, &d.ReasoningContent)
				case "refusal":
					return s.optString(v, &d.Refusal)
				case "tool_calls":
					if string(v) == "null" {
						return true
					}
					var calls []llm.ToolCall // its own variable: ch stays on the stack
					err := json.Unmarshal(v, &calls)
					d.ToolCalls = calls
					return err == nil
				}
				return !foldsTo(key, "role", "content", "reasoning_content", "refusal", "tool_calls")
			})
		}
		return !foldsTo(key, "index", "finish_reason", "delta")
	})
	if ok {
		s.choices = append(s.choices, ch)
	}
	return ok
}

// optString reads a string-or-null member; any other value is refused.
// The string lives in the stream's slots, valid until the next chunk as
// the chunk is, so a chunk costs one allocation: its text.
func (s *stream) optString(v []byte, dst **string) bool {
	if string(v) == "null" {
		*dst = nil
		return true
	}
	str, ok := llm.RawString(v)
	if !ok {
		return false
	}
	if s.nstrs < len(s.strs) {
		s.strs[s.nstrs] = str
		*dst = &s.strs[s.nstrs]
		s.nstrs++
	} else {
		*dst = llm.Ptr(str)
	}
	return true
}

// foldsTo reports whether key is one of names in another case: encoding/json
// matches keys without regard to case, so such a chunk is decoded whole
// rather than read differently on the byte relay ("Usage" billed by its
// numbers there, not ignored here).
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}
