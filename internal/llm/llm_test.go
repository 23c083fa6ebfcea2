package llm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

// TestFieldsReadOnceInTheirOwnSpelling: a field tidegate reads appears once
// and spelt exactly; another spelling Go's decoder would match (any case,
// Unicode folds, escapes) or a repeat is refused, naming the member as sent.
// Unknown members pass through whatever their case.
func TestFieldsReadOnceInTheirOwnSpelling(t *testing.T) {
	msg := `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name, body string
		param      string // "" when the body is accepted
		extra      []string
	}{
		{"exact", `{"model":"m",` + msg + `,"max_tokens":5}`, "", nil},
		{"upper-case model", `{"model":"cheap",` + msg + `,"MODEL":"dear"}`, "MODEL", nil},
		{"variant first", `{"MODEL":"dear","model":"cheap",` + msg + `}`, "MODEL", nil},
		{"mixed-case max_tokens", `{"model":"m",` + msg + `,"max_tokens":5,"Max_Tokens":100000}`, "Max_Tokens", nil},
		{"variant alone", `{"model":"m",` + msg + `,"Max_Tokens":100000}`, "Max_Tokens", nil},
		{"Kelvin sign", `{"model":"m",` + msg + `,"max_to\u212aens":9}`, "max_to\u212aens", nil},
		{"long s, raw UTF-8", `{"model":"m",` + msg + ",\"\u017ftream\":true}", "\u017ftream", nil},
		{"escaped variant", `{"model":"m",` + msg + `,"MOD\u0045L":"x"}`, "MODEL", nil},
		{"duplicate", `{"model":"cheap",` + msg + `,"model":"dear"}`, "model", nil},
		{"escaped duplicate", `{"model":"cheap",` + msg + `,"mod\u0065l":"dear"}`, "model", nil},
		{"unknown fields in any case pass", `{"model":"m",` + msg + `,"Top_K":5,"enable_thinking":true,"x":{"MODEL":1}}`, "", []string{"Top_K", "enable_thinking", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r ChatRequest
			err := json.Unmarshal([]byte(tt.body), &r)
			if tt.param == "" {
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for k := range r.Extra {
					got = append(got, k)
				}
				if d := cmp.Diff(tt.extra, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" {
					t.Errorf("extra members (-want +got):\n%s", d)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if d := cmp.Diff(FieldError{Param: tt.param, Code: "duplicate_field"}, *fe, cmpopts.IgnoreFields(FieldError{}, "Message")); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	for name, decode := range map[string]func([]byte) error{
		"embeddings": func(b []byte) error { var r EmbeddingRequest; return json.Unmarshal(b, &r) },
		"images":     func(b []byte) error { var r ImageRequest; return json.Unmarshal(b, &r) },
	} {
		var fe *FieldError
		if err := decode([]byte(`{"model":"a","Model":"b","input":"x","prompt":"p"}`)); !errors.As(err, &fe) || fe.Param != "Model" {
			t.Errorf("%s: a second spelling of model: %v", name, err)
		}
	}
}

// TestLimits: every client number tidegate reads is bounded, both ways.
func TestLimits(t *testing.T) {
	many := make([]Message, LimitMessages+1)
	inputs := func(n int) json.RawMessage {
		b, _ := json.Marshal(make([]string, n))
		return b
	}
	tokens, _ := json.Marshal(make([]int, 5000))
	tests := []struct {
		name  string
		req   interface{ CheckLimits() error }
		param string // "" when within bounds
	}{
		{"chat within", &ChatRequest{MaxTokens: Ptr(LimitOutputTokens), N: Ptr(LimitChoices), Messages: make([]Message, LimitMessages)}, ""},
		{"max_completion_tokens 2^62", &ChatRequest{MaxCompletionTokens: Ptr(1 << 62), N: Ptr(2)}, "max_completion_tokens"},
		{"max_completion_tokens 0", &ChatRequest{MaxCompletionTokens: Ptr(0)}, "max_completion_tokens"},
		{"max_tokens over", &ChatRequest{MaxTokens: Ptr(LimitOutputTokens + 1)}, "max_tokens"},
		{"max_tokens negative", &ChatRequest{MaxTokens: Ptr(-1)}, "max_tokens"},
		{"n over", &ChatRequest{N: Ptr(LimitChoices + 1)}, "n"},
		{"n zero", &ChatRequest{N: Ptr(0)}, "n"},
		{"n negative", &ChatRequest{N: Ptr(-3)}, "n"},
		{"too many messages", &ChatRequest{Messages: many}, "messages"},
		{"embeddings within", &EmbeddingRequest{Input: inputs(LimitEmbeddingInputs), Dimensions: Ptr(256)}, ""},
		{"one token array is one input", &EmbeddingRequest{Input: tokens}, ""},
		{"too many inputs", &EmbeddingRequest{Input: inputs(LimitEmbeddingInputs + 1)}, "input"},
		{"too many token arrays", &EmbeddingRequest{Input: json.RawMessage("[" + strings.Repeat("[1],", LimitEmbeddingInputs) + "[1]]")}, "input"},
		{"dimensions negative", &EmbeddingRequest{Input: json.RawMessage(`"x"`), Dimensions: Ptr(-1)}, "dimensions"},
		{"dimensions over", &EmbeddingRequest{Input: json.RawMessage(`"x"`), Dimensions: Ptr(LimitEmbeddingDimensions + 1)}, "dimensions"},
		{"images within", &ImageRequest{N: Ptr(LimitImages)}, ""},
		{"images over", &ImageRequest{N: Ptr(LimitImages + 1)}, "n"},
		{"images negative", &ImageRequest{N: Ptr(-1)}, "n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.CheckLimits()
			var fe *FieldError
			switch {
			case tt.param == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.param == "":
			case !errors.As(err, &fe):
				t.Fatalf("err = %v, want a FieldError on %s", err, tt.param)
			case fe.Param != tt.param || fe.Code != "invalid_value" || !strings.Contains(fe.Message, tt.param):
				t.Errorf("got %+v, want param %s", *fe, tt.param)
			}
		})
	}
}
