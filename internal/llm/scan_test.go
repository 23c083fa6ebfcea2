package llm

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMembersValidates checks the scan accepts exactly what encoding/json
// accepts as an object (keys without escapes), and reads its members.
func TestMembersValidates(t *testing.T) {
	tests := []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":-0.5e+10,"b":[1,2,{"c":null}],"d":true,"e":false,"f":"x\"y\\u00e9"}`,
		`{"a":[]}`, `{"a":{}}`, `{"a":[[],[{}]]}`, "{\"a\":\t\"b\"\r\n}",
		``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":01}`, `{"a":1.}`, `{"a":1e}`, `{"a":-}`,
		`{"a":tru}`, `{"a":nulll}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x1f\"}", `{"a":[1,]}`, `{"a":[1 2]}`,
		`{"a":1}}`, `{"a":1} x`, `{a:1}`, `{"a":"unterminated}`, `{"a":+1}`, `{"a":.5}`, `{"a":[}`,
	}
	for _, in := range tests {
		var keys []string
		got := Members([]byte(in), func(k, v []byte) bool { keys = append(keys, string(k)+"="+string(v)); return true })
		var obj map[string]json.RawMessage
		want := json.Unmarshal([]byte(in), &obj) == nil
		if got != want {
			t.Errorf("Members(%q) = %v, encoding/json says %v", in, got, want)
		}
		if got && len(keys) != len(obj) {
			t.Errorf("Members(%q) read %d members, want %d", in, len(keys), len(obj))
		}
	}
}

func TestMembersReads(t *testing.T) {
	var got []string
	ok := Members([]byte(`{"a": 1, "b" :"x" ,"c":{"d":[1]}}`), func(k, v []byte) bool { got = append(got, string(k)+"="+string(v)); return true })
	if want := []string{"a=1", `b="x"`, `c={"d":[1]}`}; !ok || !cmp.Equal(got, want) {
		t.Errorf("Members = %v %q, want %q", ok, got, want)
	}
	if Members([]byte(`{"\u0061":1}`), func(k, v []byte) bool { return true }) {
		t.Error("a key with an escape was read as plain")
	}
	if Members([]byte(`{"a":1,"b":2}`), func(k, v []byte) bool { return string(k) != "b" }) {
		t.Error("fn's false did not stop the walk")
	}
}

func TestRawString(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true},
		{`"a\"b\\c\n\u00e9\ud83d\ude00"`, "a\"b\\c\né😀", true},
		{`null`, "", false},
		{`1`, "", false},
		{`""`, "", true},
	}
	for _, tt := range tests {
		got, ok := RawString([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("RawString(%s) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// BenchmarkChunkScan compares reading a chunk by the scan with decoding it.
func BenchmarkChunkScan(b *testing.B) {
	chunk := []byte(`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" tide"},"logprobs":null,"finish_reason":null}]}`)
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var content string
			Members(chunk, func(k, v []byte) bool {
				if string(k) == "choices" {
					return Elements(v, func(v []byte) bool {
						return Members(v, func(k, v []byte) bool {
							if string(k) == "delta" {
								return Members(v, func(k, v []byte) bool {
									if string(k) == "content" {
										content, _ = RawString(v)
									}
									return true
								})
							}
							return true
						})
					})
				}
				return true
			})
			_ = content
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c ChatChunk
			if err := json.Unmarshal(chunk, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
