package openai

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/sse"
)

// relayView is what the gateway reads of a chunk on the byte relay: the
// relay must give the same view as the whole decode, chunk by chunk.
type relayView struct {
	Choices []llm.ChunkChoice
	Usage   *llm.Usage
	Raw     string
	Content bool
}

func readAll(t *testing.T, events string, relay bool) ([]relayView, *errView, *stream) {
	t.Helper()
	body := io.NopCloser(strings.NewReader(events))
	s := &stream{c: &Client{Name: "up", APIKey: "sk-test-0000"}, body: body, r: sse.NewReader(body), relay: relay}
	var got []relayView
	for s.Next() {
		c := s.Chunk()
		got = append(got, relayView{Choices: c.Choices, Usage: c.Usage, Raw: string(c.Raw), Content: c.HasContent()})
		// the chunk is reused: keep copies
		last := &got[len(got)-1]
		cl := c.Clone()
		last.Choices = cl.Choices
	}
	var ev *errView
	if err := s.Err(); err != nil {
		e := provider.AsError(err)
		ev = &errView{Kind: e.Kind, Code: e.Code, Provider: e.Provider, Status: e.Status}
	}
	return got, ev, s
}

func TestStreamByteRelay(t *testing.T) {
	data := func(s ...string) string {
		var b strings.Builder
		for _, e := range s {
			b.WriteString("data: " + e + "\n\n")
		}
		return b.String()
	}
	const head = `"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",`
	tests := []struct {
		name    string
		events  string
		scanned int // chunks the relay read by a scan
	}{
		{"role, content, finish, usage", data(`{`+head+`"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
			`{`+head+`"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}`,
			`{`+head+`"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`{`+head+`"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}`, "[DONE]"), 3},
		{"escapes and unicode in content", data(`{`+head+`"choices":[{"index":0,"delta":{"content":"a\"b\\c\u00e9\n"},"finish_reason":"stop"}]}`, "[DONE]"), 1},
		{"whitespace between tokens", data("{ \"object\" : \"chat.completion.chunk\" ,\t \"choices\" : [ { \"index\" : 0 , \"delta\" : { \"content\" : \"x\" } , \"finish_reason\" : \"stop\" } ] }", "[DONE]"), 1},
		{"reasoning, refusal and tool calls", data(`{`+head+`"choices":[{"index":0,"delta":{"reasoning_content":"think"},"finish_reason":null}]}`,
			`{`+head+`"choices":[{"index":0,"delta":{"refusal":"no"},"finish_reason":null}]}`,
			`{`+head+`"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}]}`, "[DONE]"), 3},
		{"two choices", data(`{`+head+`"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null},{"index":1,"delta":{"content":"b"},"finish_reason":"length"}]}`,
			`{`+head+`"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, "[DONE]"), 2},
		{"a null system_fingerprint is decoded and re-encoded", data(`{`+head+`"system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}`, "[DONE]"), 0},
		{"no object: decoded", data(`{"id":"c1","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}`, "[DONE]"), 0},
		{"usage beside a choice: decoded", data(`{`+head+`"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, "[DONE]"), 0},
		{"a key in another case: decoded (encoding/json folds case)", data(`{`+head+`"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"Usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, "[DONE]"), 0},
		{"a delta key in another case: decoded", data(`{`+head+`"choices":[{"index":0,"delta":{"Content":"x"},"finish_reason":"stop"}]}`, "[DONE]"), 0},
		{"an escaped key: decoded", data(`{`+head+`"choices":[{"index":0,"delta":{"\u0063ontent":"x"},"finish_reason":"stop"}]}`, "[DONE]"), 0},
		{"an error object", data(`{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":"rate_limit_exceeded"}}`), 0},
		{"minimax base_resp", data(`{"id":"c1","base_resp":{"status_code":1027,"status_msg":"output new_sensitive"}}`), 0},
		{"malformed: cut", data(`{"id":`), 0},
		{"malformed: bad literal", data(`{` + head + `"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":nul}]}`), 0},
		{"malformed: bad number", data(`{` + head + `"choices":[{"index":01,"delta":{"content":"x"},"finish_reason":null}]}`), 0},
		{"malformed: control character in a string", data("{" + head + "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\x01\"},\"finish_reason\":null}]}"), 0},
		{"malformed: trailing bytes", data(`{` + head + `"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}}`), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr, _ := readAll(t, tt.events, false)
			got, gotErr, s := readAll(t, tt.events, true)
			opts := cmp.Options{cmpopts.IgnoreFields(llm.Usage{}, "Raw"), cmpopts.IgnoreFields(llm.ChunkChoice{}, "Logprobs"), cmpopts.EquateEmpty()}
			if diff := cmp.Diff(want, got, opts); diff != "" {
				t.Errorf("relayed chunks differ from decoded ones (-decoded +relayed):\n%s", diff)
			}
			if diff := cmp.Diff(wantErr, gotErr); diff != "" {
				t.Errorf("error (-decoded +relayed):\n%s", diff)
			}
			if s.scanned != tt.scanned {
				t.Errorf("scanned %d chunks, want %d", s.scanned, tt.scanned)
			}
			if s.ByteRelayed() != (tt.scanned > 0) {
				t.Errorf("ByteRelayed() = %v with %d scanned", s.ByteRelayed(), s.scanned)
			}
		})
	}
}
