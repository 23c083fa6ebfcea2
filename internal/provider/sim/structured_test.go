package sim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tidegate/tidegate/internal/llm"
)

// checkSchema validates doc against schema, formats asserted.
func checkSchema(t *testing.T, schema, doc string) {
	t.Helper()
	s, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("schema.json", s); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("answer is not JSON: %s", doc)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("answer %s does not match its schema: %v", doc, err)
	}
}

var schemas = map[string]string{
	"flat": `{"type":"object","properties":{"city":{"type":"string"},"temp_c":{"type":"integer","minimum":-40,"maximum":50},
		"sunny":{"type":"boolean"},"rain_mm":{"type":"number","exclusiveMinimum":0}},"required":["city","temp_c","sunny","rain_mm"],"additionalProperties":false}`,
	"nested, enums, arrays": `{"type":"object","properties":{"trip":{"type":"object","properties":{"mode":{"enum":["ferry","train"]},
		"stops":{"type":"array","minItems":2,"maxItems":4,"items":{"type":"object","properties":{"port":{"type":"string","minLength":3,"maxLength":8},
		"at":{"type":"string","format":"date-time"}},"required":["port","at"],"additionalProperties":false}}},"required":["mode","stops"],"additionalProperties":false},
		"kind":{"const":"plan"}},"required":["trip","kind"],"additionalProperties":false}`,
	"formats": `{"type":"object","properties":{"id":{"type":"string","format":"uuid"},"mail":{"type":"string","format":"email"},
		"day":{"type":"string","format":"date"},"site":{"type":"string","format":"uri"},"ip":{"type":"string","format":"ipv4"}},
		"required":["id","mail","day","site","ip"]}`,
	"defs, nullable, recursion": `{"type":"object","$defs":{"node":{"type":"object","properties":{"name":{"type":"string"},
		"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["name","children"]}},
		"properties":{"root":{"$ref":"#/$defs/node"},"note":{"anyOf":[{"type":"string"},{"type":"null"}]},"score":{"type":["number","null"]}},
		"required":["root","note","score"]}`,
	"allOf":           `{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"integer"}},"required":["b"]}]}`,
	"top-level array": `{"type":"array","items":{"type":"string","enum":["x","y"]},"minItems":1}`,
}

// TestJSONSchemaAnswers: a json_schema response format gets a value of the
// schema, whole and streamed alike.
func TestJSONSchemaAnswers(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", OutputTokens: 8}})
	ctx := context.Background()
	for name, schema := range schemas {
		t.Run(name, func(t *testing.T) {
			r := req("m")
			r.ResponseFormat = &llm.ResponseFormat{Type: "json_schema", JSONSchema: json.RawMessage(`{"name":"x","strict":true,"schema":` + schema + `}`)}
			whole, err := f.ChatCompletion(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			text := whole.Choices[0].Message.Content.Text
			checkSchema(t, schema, text)
			if whole.Choices[0].FinishReason != llm.FinishStop || whole.Usage.CompletionTokens != len(splitPieces(text)) {
				t.Errorf("finish %q, usage %+v for %d pieces", whole.Choices[0].FinishReason, whole.Usage, len(splitPieces(text)))
			}
			s, err := f.ChatCompletionStream(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			streamed, _, err := drain(t, s)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(text, streamed); d != "" {
				t.Errorf("stream differs from the whole answer:\n%s", d)
			}
		})
	}
}

func TestJSONObjectAndCutSchemaAnswers(t *testing.T) {
	f := New("sim", 1, nil)
	r := req("fast")
	r.ResponseFormat = &llm.ResponseFormat{Type: "json_object"}
	resp, err := f.ChatCompletion(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content.Text), &obj); err != nil {
		t.Errorf("json_object answer is no object: %s", resp.Choices[0].Message.Content.Text)
	}
	// max_tokens cuts a schema's value, as it cuts a model's.
	r.ResponseFormat = &llm.ResponseFormat{Type: "json_schema", JSONSchema: json.RawMessage(`{"name":"x","schema":` + schemas["flat"] + `}`)}
	r.MaxTokens = llm.Ptr(3)
	resp, err = f.ChatCompletion(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].FinishReason != llm.FinishLength || resp.Usage.CompletionTokens != 3 || json.Valid([]byte(resp.Choices[0].Message.Content.Text)) {
		t.Errorf("cut answer %q, finish %q, usage %+v", resp.Choices[0].Message.Content.Text, resp.Choices[0].FinishReason, resp.Usage)
	}
}

// TestToolCallsMatchParameters: a required or named tool choice gets a call
// whose arguments are valid for the tool's parameters, even after a tool result.
func TestToolCallsMatchParameters(t *testing.T) {
	f := New("sim", 1, nil)
	tools := []llm.Tool{
		{Type: "function", Function: llm.ToolFunction{Name: "plan_trip", Parameters: json.RawMessage(schemas["nested, enums, arrays"])}},
		{Type: "function", Function: llm.ToolFunction{Name: "weather", Parameters: json.RawMessage(schemas["flat"])}},
	}
	afterResult := append(req("fast").Messages,
		llm.Message{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: "call_1", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: "{}"}}}},
		llm.Message{Role: "tool", ToolCallID: "call_1", Content: llm.TextContent(`{"ok":true}`)})
	tests := []struct {
		name, choice string
		messages     []llm.Message
		want         string // the tool called; "" for a text answer
	}{
		{"required", `"required"`, nil, "plan_trip"},
		{"named", `{"type":"function","function":{"name":"weather"}}`, nil, "weather"},
		{"required after a tool result", `"required"`, afterResult, "plan_trip"},
		{"auto after a tool result", `"auto"`, afterResult, ""},
		{"none", `"none"`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("fast")
			if tt.messages != nil {
				r.Messages = tt.messages
			}
			r.Tools, r.ToolChoice = tools, json.RawMessage(tt.choice)
			resp, err := f.ChatCompletion(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			calls := resp.Choices[0].Message.ToolCalls
			if tt.want == "" {
				if len(calls) != 0 || resp.Choices[0].FinishReason != llm.FinishStop {
					t.Errorf("want a text answer, got %+v", resp.Choices[0])
				}
				return
			}
			if len(calls) != 1 || calls[0].Function.Name != tt.want || resp.Choices[0].FinishReason != llm.FinishToolCalls {
				t.Fatalf("want a call of %s, got %+v", tt.want, resp.Choices[0])
			}
			for _, tool := range tools {
				if tool.Function.Name == tt.want {
					checkSchema(t, string(tool.Function.Parameters), calls[0].Function.Arguments)
				}
			}
		})
	}
}

// TestStop: the answer ends before the first stop sequence, with finish
// reason stop, whole and streamed; a stop that never occurs changes nothing.
func TestStop(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", OutputTokens: 20}})
	ctx := context.Background()
	full, err := f.ChatCompletion(ctx, req("m"))
	if err != nil {
		t.Fatal(err)
	}
	text := full.Choices[0].Message.Content.Text
	fields := strings.Fields(text)
	third := " " + fields[3] // a word well inside the answer
	tests := []struct {
		name   string
		stop   llm.Stop
		max    int
		want   string
		finish string
	}{
		{"a word inside", llm.Stop{"nothing like it", third}, 0, text[:strings.Index(text, third)], llm.FinishStop},
		{"inside the first piece", llm.Stop{"lated]"}, 0, "[simu", llm.FinishStop},
		{"never occurs", llm.Stop{"zzz"}, 0, text, llm.FinishStop},
		{"past max_tokens", llm.Stop{fields[len(fields)-1]}, 2, strings.Join(fields[:2], " "), llm.FinishLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("m")
			r.Stop = tt.stop
			if tt.max > 0 {
				r.MaxTokens = llm.Ptr(tt.max)
			}
			resp, err := f.ChatCompletion(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			got := resp.Choices[0].Message.Content.Text
			if got != tt.want || resp.Choices[0].FinishReason != tt.finish {
				t.Errorf("got %q (%s), want %q (%s)", got, resp.Choices[0].FinishReason, tt.want, tt.finish)
			}
			s, err := f.ChatCompletionStream(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			streamed, usage, err := drain(t, s)
			if err != nil || streamed != got || !cmp.Equal(usage, resp.Usage) {
				t.Errorf("stream %q %+v (%v), whole %q %+v", streamed, usage, err, got, resp.Usage)
			}
		})
	}
}

// TestLogprobs: asked for, every content token has a log probability in
// OpenAI's shape, alternatives as many as asked, likeliest first.
func TestLogprobs(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", OutputTokens: 6}})
	r := req("m")
	r.Logprobs, r.TopLogprobs, r.N = llm.Ptr(true), llm.Ptr(3), llm.Ptr(2)
	resp, err := f.ChatCompletion(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	type lp struct {
		Token       string  `json:"token"`
		Logprob     float64 `json:"logprob"`
		Bytes       []int   `json:"bytes"`
		TopLogprobs []lp    `json:"top_logprobs"`
	}
	for _, ch := range resp.Choices {
		var got struct {
			Content []lp `json:"content"`
			Refusal []lp `json:"refusal"`
		}
		if err := json.Unmarshal(ch.Logprobs, &got); err != nil {
			t.Fatalf("logprobs %s: %v", ch.Logprobs, err)
		}
		var text strings.Builder
		for _, tok := range got.Content {
			text.WriteString(tok.Token)
			var b []byte
			for _, x := range tok.Bytes {
				b = append(b, byte(x))
			}
			if string(b) != tok.Token || tok.Logprob > 0 || len(tok.TopLogprobs) != 3 || tok.TopLogprobs[0].Token != tok.Token {
				t.Errorf("token %+v", tok)
			}
			for i := 1; i < len(tok.TopLogprobs); i++ {
				if tok.TopLogprobs[i].Logprob > tok.TopLogprobs[i-1].Logprob {
					t.Errorf("alternatives out of order: %+v", tok.TopLogprobs)
				}
			}
		}
		if text.String() != ch.Message.Content.Text {
			t.Errorf("logprob tokens spell %q, the answer is %q", text.String(), ch.Message.Content.Text)
		}
	}
	// Streamed: each content chunk carries its own token.
	s, err := f.ChatCompletionStream(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	for s.Next() {
		for _, ch := range s.Chunk().Choices {
			if ch.Delta.Content == nil || *ch.Delta.Content == "" {
				continue
			}
			var got struct{ Content []lp }
			if json.Unmarshal(ch.Logprobs, &got) != nil || len(got.Content) != 1 || got.Content[0].Token != *ch.Delta.Content {
				t.Errorf("chunk %q has logprobs %s", *ch.Delta.Content, ch.Logprobs)
			}
		}
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	// Not asked for: none.
	resp, _ = f.ChatCompletion(context.Background(), req("m"))
	if resp.Choices[0].Logprobs != nil {
		t.Errorf("logprobs %s without being asked", resp.Choices[0].Logprobs)
	}
}

func TestTokenIDEmbeddings(t *testing.T) {
	f := New("sim", 1, nil)
	embed := func(input string) (*llm.EmbeddingResponse, error) {
		return f.Embeddings(context.Background(), &llm.EmbeddingRequest{Model: "embed", Input: json.RawMessage(input)})
	}
	tests := []struct {
		input   string
		vectors int
		tokens  int
	}{
		{`[101, 2023, 102]`, 1, 3},
		{`[[101, 2023], [7]]`, 2, 3},
		{`["tide", "gate"]`, 2, 2},
	}
	for _, tt := range tests {
		resp, err := embed(tt.input)
		if err != nil {
			t.Fatalf("%s: %v", tt.input, err)
		}
		if len(resp.Data) != tt.vectors || resp.Usage.PromptTokens != tt.tokens {
			t.Errorf("%s: %d vectors, %d tokens", tt.input, len(resp.Data), resp.Usage.PromptTokens)
		}
	}
	a, _ := embed(`[[1,2],[3]]`)
	b, _ := embed(`[1,2]`)
	if !bytes.Equal(a.Data[0].Embedding, b.Data[0].Embedding) || bytes.Equal(a.Data[0].Embedding, a.Data[1].Embedding) {
		t.Error("the same token ids must embed the same, others differently")
	}
	if _, err := embed(`[1.5]`); err == nil {
		t.Error("fractional token ids accepted")
	}
}

func TestImageURL(t *testing.T) {
	f := New("sim", 1, nil)
	resp, err := f.ImageGeneration(context.Background(), &llm.ImageRequest{Model: "fast", Prompt: "a gate", ResponseFormat: "url"})
	if err != nil {
		t.Fatal(err)
	}
	d := resp.Data[0]
	b64, ok := strings.CutPrefix(d.URL, "data:image/png;base64,")
	if !ok || d.B64JSON != "" {
		t.Fatalf("want a data: URL only, got %+v", d)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(raw)); err != nil {
		t.Errorf("the URL holds no PNG: %v", err)
	}
}
