package responses

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/llm"
)

func decodeRequest(t *testing.T, body string) *Request {
	t.Helper()
	var r Request
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return &r
}

func text(role, s string) llm.Message { return llm.Message{Role: role, Content: llm.TextContent(s)} }

func TestToChat(t *testing.T) {
	weather := json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}}}`)
	tests := []struct {
		name    string
		body    string
		history []Item
		want    *llm.ChatRequest
	}{
		{
			name: "text input, instructions and sampling",
			body: `{"model":"chat","input":"Hello","instructions":"Be brief.","max_output_tokens":50,"temperature":0.5,"top_p":0.9,
				"user":"u1","reasoning":{"effort":"low"},"metadata":{"k":"v"}}`,
			want: &llm.ChatRequest{Model: "chat", Messages: []llm.Message{text("system", "Be brief."), text("user", "Hello")},
				MaxTokens: llm.Ptr(50), Temperature: llm.Ptr(0.5), TopP: llm.Ptr(0.9), User: "u1", ReasoningEffort: "low"},
		},
		{
			name: "message items: text and image parts, roles kept",
			body: `{"model":"chat","stream":true,"input":[
				{"role":"developer","content":"Answer in French."},
				{"type":"message","role":"user","content":[{"type":"input_text","text":"What is this?"},{"type":"input_image","image_url":"https://x/cat.png","detail":"low"}]},
				{"role":"assistant","content":[{"type":"output_text","text":"Un chat."}]},
				{"role":"user","content":[{"type":"input_text","text":"Sure? "},{"type":"input_text","text":"Look again."}]}]}`,
			want: &llm.ChatRequest{Model: "chat", Stream: true, StreamOptions: &llm.StreamOptions{IncludeUsage: true}, Messages: []llm.Message{
				text("developer", "Answer in French."),
				{Role: "user", Content: llm.Content{Set: true, Parts: []llm.ContentPart{{Type: "text", Text: "What is this?"},
					{Type: "image_url", ImageURL: &llm.ImageURL{URL: "https://x/cat.png", Detail: "low"}}}}},
				text("assistant", "Un chat."),
				text("user", "Sure? Look again."),
			}},
		},
		{
			name: "function calls join the assistant message, outputs become tool messages, reasoning goes along",
			body: `{"model":"chat","input":[
				{"role":"user","content":"Weather in Paris and Rome?"},
				{"type":"reasoning","id":"rs_1","summary":[],"content":[{"type":"reasoning_text","text":"Two cities."}]},
				{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
				{"type":"function_call","id":"fc_1","call_id":"call_a","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
				{"type":"function_call","call_id":"call_b","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},
				{"type":"function_call_output","call_id":"call_a","output":"18C"},
				{"type":"function_call_output","call_id":"call_b","output":[{"type":"input_text","text":"21C"}]}],
				"tools":[{"type":"function","name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}],
				"tool_choice":{"type":"function","name":"get_weather"},"parallel_tool_calls":false}`,
			want: &llm.ChatRequest{Model: "chat", Messages: []llm.Message{
				text("user", "Weather in Paris and Rome?"),
				{Role: "assistant", Content: llm.TextContent("Checking."), ReasoningContent: "Two cities.", ToolCalls: []llm.ToolCall{
					{ID: "call_a", Type: "function", Function: llm.FunctionCall{Name: "get_weather", Arguments: `{"city":"Paris"}`}},
					{ID: "call_b", Type: "function", Function: llm.FunctionCall{Name: "get_weather", Arguments: `{"city":"Rome"}`}}}},
				{Role: "tool", ToolCallID: "call_a", Content: llm.TextContent("18C")},
				{Role: "tool", ToolCallID: "call_b", Content: llm.TextContent("21C")},
			},
				Tools: []llm.Tool{{Type: "function", Function: llm.ToolFunction{Name: "get_weather", Description: "Weather",
					Parameters: weather, Strict: llm.Ptr(true)}}},
				ToolChoice:        json.RawMessage(`{"function":{"name":"get_weather"},"type":"function"}`),
				ParallelToolCalls: llm.Ptr(false)},
		},
		{
			name: "a function call with no assistant message before it opens one; parallel_tool_calls dropped without tools",
			body: `{"model":"chat","parallel_tool_calls":true,"tool_choice":"none","input":[
				{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},
				{"type":"function_call_output","call_id":"c","output":"ok"},
				{"role":"user","content":"and?"}]}`,
			want: &llm.ChatRequest{Model: "chat", ToolChoice: json.RawMessage(`"none"`), Messages: []llm.Message{
				{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: "c", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: "{}"}}}},
				{Role: "tool", ToolCallID: "c", Content: llm.TextContent("ok")},
				text("user", "and?"),
			}},
		},
		{
			name: "json_schema format",
			body: `{"model":"chat","input":"x","text":{"format":{"type":"json_schema","name":"city","schema":{"type":"object"},"strict":true}}}`,
			want: &llm.ChatRequest{Model: "chat", Messages: []llm.Message{text("user", "x")},
				ResponseFormat: &llm.ResponseFormat{Type: "json_schema", JSONSchema: json.RawMessage(`{"name":"city","schema":{"type":"object"},"strict":true}`)}},
		},
		{
			name: "json_object format; text format is chat's default",
			body: `{"model":"chat","input":"x","text":{"format":{"type":"json_object"}}}`,
			want: &llm.ChatRequest{Model: "chat", Messages: []llm.Message{text("user", "x")}, ResponseFormat: &llm.ResponseFormat{Type: "json_object"}},
		},
		{
			name: "history goes before the new input, after the new instructions",
			body: `{"model":"chat","input":"And tomorrow?","instructions":"New rules."}`,
			history: []Item{
				{Type: "message", Role: "user", Content: json.RawMessage(`"Weather today?"`)},
				{Type: "message", Role: "assistant", ID: "msg_1", Status: "completed", Content: json.RawMessage(`[{"type":"output_text","text":"Sunny.","annotations":[],"logprobs":[]}]`)},
			},
			want: &llm.ChatRequest{Model: "chat", Messages: []llm.Message{text("system", "New rules."), text("user", "Weather today?"),
				text("assistant", "Sunny."), text("user", "And tomorrow?")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := decodeRequest(t, tc.body)
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			got, conv, err := ToChat(r, tc.history)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("chat request (-want +got):\n%s", d)
			}
			input, _ := InputItems(r.Input)
			if want := append(append([]Item{}, tc.history...), input...); !cmp.Equal(want, conv, cmpopts.EquateEmpty()) {
				t.Errorf("conversation = %+v, want history then input %+v", conv, want)
			}
		})
	}
}

func TestRequestRefused(t *testing.T) {
	tests := []struct {
		name, body, param string
	}{
		{"no model", `{"input":"x"}`, "model"},
		{"no input", `{"model":"m"}`, "input"},
		{"max_output_tokens zero", `{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens"},
		{"max_output_tokens past the bound", `{"model":"m","input":"x","max_output_tokens":9223372036854775807}`, "max_output_tokens"},
		{"temperature", `{"model":"m","input":"x","temperature":2.5}`, "temperature"},
		{"top_p", `{"model":"m","input":"x","top_p":-1}`, "top_p"},
		{"too much metadata", `{"model":"m","input":"x","metadata":{"1":"","2":"","3":"","4":"","5":"","6":"","7":"","8":"","9":"","10":"","11":"","12":"","13":"","14":"","15":"","16":"","17":""}}`, "metadata"},
		{"background", `{"model":"m","input":"x","background":true}`, "background"},
		{"conversation", `{"model":"m","input":"x","conversation":"conv_1"}`, "conversation"},
		{"input of another type", `{"model":"m","input":42}`, "input"},
		{"empty input", `{"model":"m","input":[]}`, "input"},
		{"item type unknown", `{"model":"m","input":[{"type":"item_reference","id":"x"}]}`, "input[0].type"},
		{"item without a type", `{"model":"m","input":[{"content":"x"}]}`, "input[0].type"},
		{"role unknown", `{"model":"m","input":[{"role":"critic","content":"x"}]}`, "input[0].role"},
		{"file part", `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, "input[0].content[0].type"},
		{"image by file id", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}`, "input[0].content[0].image_url"},
		{"image outside a user message", `{"model":"m","input":[{"role":"system","content":[{"type":"input_image","image_url":"https://x"}]}]}`, "input[0].content[0]"},
		{"function call without call_id", `{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0]"},
		{"output without call_id", `{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`, "input[0].call_id"},
		{"output with an image", `{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"https://x"}]}]}`, "input[0].output[0].type"},
		{"built-in tool", `{"model":"m","input":"x","tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{"function without a name", `{"model":"m","input":"x","tools":[{"type":"function"}]}`, "tools[0].name"},
		{"tool_choice mode", `{"model":"m","input":"x","tool_choice":"sometimes"}`, "tool_choice"},
		{"tool_choice allowed_tools", `{"model":"m","input":"x","tool_choice":{"type":"allowed_tools","mode":"auto","tools":[]}}`, "tool_choice"},
		{"format type", `{"model":"m","input":"x","text":{"format":{"type":"yaml"}}}`, "text.format.type"},
		{"json_schema without schema", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n"}}}`, "text.format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := json.Unmarshal([]byte(tc.body), &r)
			if err == nil {
				err = r.Validate()
			}
			if err == nil {
				_, _, err = ToChat(&r, nil)
			}
			var fe *llm.FieldError
			if !errors.As(err, &fe) || fe.Param != tc.param {
				t.Fatalf("error = %v, want a field error naming %q", err, tc.param)
			}
		})
	}
}

// TestDuplicateFieldsRefused: a field tidegate reads, sent twice or in
// another spelling, is refused (an upstream could read the other one).
func TestDuplicateFieldsRefused(t *testing.T) {
	for _, body := range []string{
		`{"model":"a","model":"b","input":"x"}`,
		`{"model":"a","MODEL":"b","input":"x"}`,
	} {
		var r Request
		var fe *llm.FieldError
		if err := json.Unmarshal([]byte(body), &r); !errors.As(err, &fe) || fe.Code != "duplicate_field" {
			t.Errorf("%s: %v, want duplicate_field", body, err)
		}
	}
}

func TestHistory(t *testing.T) {
	st := &Stored{ID: "resp_1",
		Input:    json.RawMessage(`[{"type":"message","role":"user","content":"Hi"}]`),
		Response: json.RawMessage(`{"id":"resp_1","output":[{"type":"function_call","id":"fc_1","call_id":"c","name":"f","arguments":"{}","status":"completed"}]}`)}
	got, err := History(st)
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{{Type: "message", Role: "user", Content: json.RawMessage(`"Hi"`)},
		{Type: "function_call", ID: "fc_1", CallID: "c", Name: "f", Arguments: llm.Ptr("{}"), Status: "completed"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("History (-want +got):\n%s", d)
	}
	if _, err := History(&Stored{ID: "bad", Input: json.RawMessage(`{`)}); err == nil {
		t.Error("a corrupt record read as history")
	}
}
