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
		{"batch with a null id", Batch, `{"id":null,"object":"batch","endpoint":"/v1/chat/completions","input_file_id":"f",
			"completion_window":"24h","status":"validating","created_at":1}`},
		{"batch of an unknown status", Batch, `{"id":"b","object":"batch","endpoint":"/v1/chat/completions","input_file_id":"f",
			"completion_window":"24h","status":"done","created_at":1}`},
		{"batch time as a string", Batch, `{"id":"b","object":"batch","endpoint":"/v1/chat/completions","input_file_id":"f",
			"completion_window":"24h","status":"completed","created_at":1,"completed_at":"2024-01-01"}`},
		{"file without bytes", File, `{"id":"f","object":"file","created_at":1,"filename":"a","purpose":"batch","status":"processed","bytes":null}`},
		{"file of an unknown purpose", File, `{"id":"f","object":"file","bytes":1,"created_at":1,"filename":"a","purpose":"nightly","status":"processed"}`},
		{"batch list without has_more", BatchList, `{"object":"list","data":[],"first_id":null,"last_id":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.component, []byte(tt.doc)); err == nil {
				t.Errorf("%s passed", tt.doc)
			}
		})
	}
}

// TestUnsetIsNull: a Batch as the spec's own example for POST /batches
// shows it (its unset fields null; the example's trailing comma dropped)
// passes, as does a file with its deprecated status_details null.
func TestUnsetIsNull(t *testing.T) {
	for _, tt := range []struct{ component, doc string }{
		{Batch, `{"id":"batch_abc123","object":"batch","endpoint":"/v1/chat/completions","errors":null,
			"input_file_id":"file-abc123","completion_window":"24h","status":"validating","output_file_id":null,
			"error_file_id":null,"created_at":1711471533,"in_progress_at":null,"expires_at":null,"finalizing_at":null,
			"completed_at":null,"failed_at":null,"expired_at":null,"cancelling_at":null,"cancelled_at":null,
			"request_counts":{"total":0,"completed":0,"failed":0},
			"metadata":{"customer_id":"user_123456789","batch_description":"Nightly eval job"}}`},
		{File, `{"id":"file-abc123","object":"file","bytes":120000,"created_at":1677610602,"expires_at":null,
			"filename":"mydata.jsonl","purpose":"batch","status":"processed","status_details":null}`},
	} {
		if err := Validate(tt.component, []byte(tt.doc)); err != nil {
			t.Errorf("%s: %v", tt.component, err)
		}
	}
}
