package llm

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChatRequestKeepsUnknownFields(t *testing.T) {
	in := `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}}]}],"stop":"END","top_k":5,"enable_thinking":false,"thinking":{"type":"enabled"}}`
	var r ChatRequest
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Stop{"END"}, r.Stop); d != "" {
		t.Error(d)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var want, got map[string]any
	_ = json.Unmarshal([]byte(in), &want)
	_ = json.Unmarshal(out, &got)
	want["stop"] = []any{"END"} // a single stop is sent as a list
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func TestContentNullStringParts(t *testing.T) {
	for in, want := range map[string]string{`null`: `null`, `""`: `""`, `"a"`: `"a"`, `[]`: `[]`, `[{"type":"text","text":""}]`: `[{"type":"text","text":""}]`} {
		var c Content
		if err := json.Unmarshal([]byte(in), &c); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(c)
		if string(out) != want {
			t.Errorf("%s → %s, want %s", in, out, want)
		}
	}
}

func TestStripRoutingFields(t *testing.T) {
	extra := map[string]json.RawMessage{
		"base_url":   json.RawMessage(`"http://x"`),
		"API-Key":    json.RawMessage(`"k"`),
		"extra_body": json.RawMessage(`{"api_base":"y","list":[{"apiKey":"z","keep":1}],"other":"base"}`),
		"escaped":    json.RawMessage(`{"api\u005fkey":"q"}`),
		"plain":      json.RawMessage(`{"keep":true}`),
	}
	if n := StripRoutingFields(extra); n != 5 {
		t.Errorf("removed %d, want 5", n)
	}
	got, _ := json.Marshal(extra)
	want := `{"escaped":{},"extra_body":{"list":[{"keep":1}],"other":"base"},"plain":{"keep":true}}`
	if string(got) != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestCompactJSON(t *testing.T) {
	for in, want := range map[string]string{"": "{}", " { \"a\" : 1 } ": `{"a":1}`, "not json": "not json"} {
		if got := CompactJSON([]byte(in)); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}
