package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tidegate/tidegate/internal/llm"
)

// NativeBody rewrites a client's /v1/messages body for one Anthropic
// target: the model becomes the target's own name, and members that would
// choose where a call goes or whose key it uses are removed
// (llm.StripRoutingFields). Every other member keeps its bytes, in order,
// so what Anthropic reads is what the client wrote. The body was decoded
// as a MessagesRequest first: it is valid JSON with one "model".
func NativeBody(body []byte, model string) ([]byte, error) {
	extra, err := llm.SplitMembers(body, messagesRequestFields)
	if err != nil {
		return nil, err
	}
	unknown := make(map[string]bool, len(extra))
	for k := range extra {
		unknown[k] = true
	}
	llm.StripRoutingFields(extra)

	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("request body is not a JSON object")
	}
	var out bytes.Buffer
	out.Grow(len(body) + len(model))
	out.WriteByte('{')
	write := func(name string, raw []byte) {
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		out.Write(k)
		out.WriteByte(':')
		out.Write(raw)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		switch {
		case name == "model":
			m, _ := json.Marshal(model)
			write(name, m)
		case !unknown[name]:
			write(name, raw)
		default:
			if v, kept := extra[name]; kept {
				write(name, v)
			}
		}
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}
