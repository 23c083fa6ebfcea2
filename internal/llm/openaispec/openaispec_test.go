package openaispec

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSpecExamplesPass: the answers OpenAI's spec gives as examples of its
// own shapes pass, nulls included (the `nullable` rewrite).
func TestSpecExamplesPass(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Meta struct {
					Example string `json:"example"`
				} `json:"x-oaiMeta"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(components, &doc); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range Roots {
		// A stream's example is several chunks, one a paragraph.
		for _, ex := range strings.Split(doc.Components.Schemas[name].Meta.Example, "\n\n") {
			if ex = strings.TrimSpace(ex); !json.Valid([]byte(ex)) {
				continue
			}
			checked++
			if err := Validate(name, []byte(ex)); err != nil {
				t.Errorf("%s: the spec's own example fails: %v", name, err)
			}
		}
	}
	if checked < 5 {
		t.Errorf("checked %d examples, want the chat, chunk, image and model ones", checked)
	}
}

// TestViolationsFail: each shape the spec requires is enforced.
func TestViolationsFail(t *testing.T) {
	tests := []struct {
		name, component, doc string
	}{
		{"choice without logprobs", ChatCompletion, `{"id":"x","object":"chat.completion","created":1,"model":"m",
			"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi","refusal":null}}]}`},
		{"message without refusal", ChatCompletion, `{"id":"x","object":"chat.completion","created":1,"model":"m",
			"choices":[{"index":0,"finish_reason":"stop","logprobs":null,"message":{"role":"assistant","content":"hi"}}]}`},
		{"unknown finish reason", ChatCompletionChunk, `{"id":"x","object":"chat.completion.chunk","created":1,"model":"m",
			"choices":[{"index":0,"delta":{},"finish_reason":"end_turn"}]}`},
		{"image usage in chat's shape", Images, `{"created":1,"data":[],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}`},
		{"error without param", Error, `{"error":{"message":"m","type":"t","code":null}}`},
		{"model without created", Model, `{"id":"m","object":"model","owned_by":"o"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.component, []byte(tt.doc)); err == nil {
				t.Errorf("%s passed", tt.doc)
			}
		})
	}
}
