package gemini

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/dialecttest"
	"github.com/tidegate/tidegate/internal/sse"
)

func user(text string) llm.Message { return llm.Message{Role: "user", Content: llm.TextContent(text)} }

func TestFromChatRequest(t *testing.T) {
	hi := []Content{{Role: "user", Parts: []Part{{Text: "hi"}}}}
	weather := llm.Tool{Type: "function", Function: llm.ToolFunction{Name: "weather", Description: "d", Parameters: json.RawMessage(`{"type":"object"}`)}}
	decl := []ToolSet{{FunctionDeclarations: []FunctionDeclaration{{Name: "weather", Description: "d", Parameters: json.RawMessage(`{"type":"object"}`)}}}}
	mode := func(m string, names ...string) *ToolConfig {
		tc := &ToolConfig{}
		tc.FunctionCallingConfig.Mode, tc.FunctionCallingConfig.AllowedFunctionNames = m, names
		return tc
	}
	tests := []struct {
		name string
		req  llm.ChatRequest
		want Request
	}{{
		name: "sampling and limits go to generationConfig; systems join",
		req: llm.ChatRequest{Temperature: llm.Ptr(1.5), TopP: llm.Ptr(0.9), MaxTokens: llm.Ptr(100), Stop: llm.Stop{"END"},
			Seed: llm.Ptr(int64(7)), PresencePenalty: llm.Ptr(0.1), FrequencyPenalty: llm.Ptr(0.2), N: llm.Ptr(2),
			Messages: []llm.Message{{Role: "system", Content: llm.TextContent("a")}, {Role: "developer", Content: llm.TextContent("b")}, user("hi")}},
		want: Request{Contents: hi, SystemInstruction: &Content{Parts: []Part{{Text: "a\n\nb"}}},
			GenerationConfig: &GenerationConfig{Temperature: llm.Ptr(1.5), TopP: llm.Ptr(0.9), MaxOutputTokens: llm.Ptr(100),
				StopSequences: []string{"END"}, Seed: llm.Ptr(int64(7)), PresencePenalty: llm.Ptr(0.1), FrequencyPenalty: llm.Ptr(0.2),
				CandidateCount: llm.Ptr(2)}},
	}, {
		name: "max_completion_tokens wins; n of 1 sends no candidateCount",
		req:  llm.ChatRequest{MaxTokens: llm.Ptr(100), MaxCompletionTokens: llm.Ptr(50), N: llm.Ptr(1), Messages: []llm.Message{user("hi")}},
		want: Request{Contents: hi, GenerationConfig: &GenerationConfig{MaxOutputTokens: llm.Ptr(50)}},
	}, {
		name: "json_schema: its schema member becomes responseSchema",
		req: llm.ChatRequest{ResponseFormat: &llm.ResponseFormat{Type: "json_schema",
			JSONSchema: json.RawMessage(`{"name":"x","schema":{"type":"object"}}`)}, Messages: []llm.Message{user("hi")}},
		want: Request{Contents: hi, GenerationConfig: &GenerationConfig{ResponseMimeType: "application/json",
			ResponseSchema: json.RawMessage(`{"type":"object"}`)}},
	}, {
		name: "json_object: JSON without a schema",
		req:  llm.ChatRequest{ResponseFormat: &llm.ResponseFormat{Type: "json_object"}, Messages: []llm.Message{user("hi")}},
		want: Request{Contents: hi, GenerationConfig: &GenerationConfig{ResponseMimeType: "application/json"}},
	}, {
		name: "tools, named choice, tool round trip",
		req: llm.ChatRequest{Tools: []llm.Tool{weather}, ToolChoice: json.RawMessage(`{"type":"function","function":{"name":"weather"}}`),
			Messages: []llm.Message{
				user("weather?"),
				{Role: "assistant", Content: llm.TextContent("checking"), ToolCalls: []llm.ToolCall{
					{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":"Hangzhou"}`}},
					{ID: "c2", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":`}}}},
				{Role: "tool", ToolCallID: "c1", Content: llm.TextContent(`{"temp":21}`)},
				{Role: "tool", ToolCallID: "c2", Content: llm.TextContent("bad arguments")},
				{Role: "tool", ToolCallID: "unknown", Name: "legacy", Content: llm.TextContent(`[1,2]`)},
			}},
		want: Request{GenerationConfig: &GenerationConfig{}, Tools: decl, ToolConfig: mode("ANY", "weather"), Contents: []Content{
			{Role: "user", Parts: []Part{{Text: "weather?"}}},
			{Role: "model", Parts: []Part{{Text: "checking"},
				{FunctionCall: &FunctionCall{Name: "weather", Args: json.RawMessage(`{"city":"Hangzhou"}`)}},
				{FunctionCall: &FunctionCall{Name: "weather", Args: json.RawMessage(`{}`)}}}},
			{Role: "user", Parts: []Part{
				{FunctionResponse: &FunctionResponse{Name: "weather", Response: json.RawMessage(`{"temp":21}`)}},
				{FunctionResponse: &FunctionResponse{Name: "weather", Response: json.RawMessage(`{"result":"bad arguments"}`)}},
				{FunctionResponse: &FunctionResponse{Name: "legacy", Response: json.RawMessage(`{"result":"[1,2]"}`)}}}},
		}},
	}, {
		name: "tool choice none and required",
		req:  llm.ChatRequest{Tools: []llm.Tool{weather}, ToolChoice: json.RawMessage(`"required"`), Messages: []llm.Message{user("hi")}},
		want: Request{Contents: hi, GenerationConfig: &GenerationConfig{}, Tools: decl, ToolConfig: mode("ANY")},
	}, {
		name: "no tool choice is AUTO",
		req:  llm.ChatRequest{Tools: []llm.Tool{weather}, Messages: []llm.Message{user("hi")}},
		want: Request{Contents: hi, GenerationConfig: &GenerationConfig{}, Tools: decl, ToolConfig: mode("AUTO")},
	}, {
		name: "images: data URI inline, URL as file data; an empty assistant turn keeps a part",
		req: llm.ChatRequest{Messages: []llm.Message{{Role: "user", Content: llm.Content{Set: true, Parts: []llm.ContentPart{
			{Type: "text", Text: "what?"},
			{Type: "image_url", ImageURL: &llm.ImageURL{URL: "data:image/png;base64,iVBOR"}},
			{Type: "image_url", ImageURL: &llm.ImageURL{URL: "gs://bucket/cat.jpg"}},
		}}}, {Role: "assistant"}, user("again"), user("and again")}},
		want: Request{GenerationConfig: &GenerationConfig{}, Contents: []Content{
			{Role: "user", Parts: []Part{{Text: "what?"}, {InlineData: &Blob{MimeType: "image/png", Data: "iVBOR"}},
				{FileData: &FileData{FileURI: "gs://bucket/cat.jpg"}}}},
			{Role: "model", Parts: []Part{{Text: ""}}},
			{Role: "user", Parts: []Part{{Text: "again"}, {Text: "and again"}}},
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromChatRequest(&tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("FromChatRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestThinkingConfig(t *testing.T) {
	want := map[string]*ThinkingConfig{
		"":        nil,
		"none":    {ThinkingBudget: llm.Ptr(0)},
		"minimal": {ThinkingBudget: llm.Ptr(0)},
		"low":     {ThinkingBudget: llm.Ptr(1024), IncludeThoughts: true},
		"medium":  {ThinkingBudget: llm.Ptr(8192), IncludeThoughts: true},
		"high":    {ThinkingBudget: llm.Ptr(24576), IncludeThoughts: true},
	}
	got := map[string]*ThinkingConfig{}
	for effort := range want {
		gr, err := FromChatRequest(&llm.ChatRequest{ReasoningEffort: effort, Messages: []llm.Message{user("hi")}})
		if err != nil {
			t.Fatal(err)
		}
		got[effort] = gr.GenerationConfig.ThinkingConfig
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("thinking by effort (-want +got):\n%s", diff)
	}
}

func TestFromChatRequestRejectsUnknownRole(t *testing.T) {
	_, err := FromChatRequest(&llm.ChatRequest{Messages: []llm.Message{{Role: "narrator"}}})
	if diff := cmp.Diff(&errView{Kind: provider.KindInvalidRequest, Param: "messages"}, dialecttest.View(err)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestCandidateMessage(t *testing.T) {
	tests := []struct {
		name       string
		cand       Candidate
		choice     int
		want       llm.Message
		wantFinish string
	}{{
		name: "thoughts become reasoning, text parts join",
		cand: Candidate{FinishReason: "STOP", Content: Content{Parts: []Part{{Text: "hmm", Thought: true}, {Text: "Hel"}, {Text: "lo"}}}},
		want: llm.Message{Role: "assistant", Content: llm.TextContent("Hello"), ReasoningContent: "hmm"}, wantFinish: "stop",
	}, {
		name:   "function calls: ids by choice and part, STOP becomes tool_calls, no content",
		choice: 1,
		cand: Candidate{FinishReason: "STOP", Content: Content{Parts: []Part{
			{FunctionCall: &FunctionCall{Name: "weather", Args: json.RawMessage(`{ "city": "Hangzhou" }`)}},
			{FunctionCall: &FunctionCall{Name: "now"}}}}},
		want: llm.Message{Role: "assistant", ToolCalls: []llm.ToolCall{
			{ID: "call_1_0", Type: "function", Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":"Hangzhou"}`}},
			{ID: "call_1_1", Type: "function", Function: llm.FunctionCall{Name: "now", Arguments: `{}`}}}},
		wantFinish: "tool_calls",
	}, {
		name: "a cut-off call keeps length",
		cand: Candidate{FinishReason: "MAX_TOKENS", Content: Content{Parts: []Part{{FunctionCall: &FunctionCall{Name: "now"}}}}},
		want: llm.Message{Role: "assistant", ToolCalls: []llm.ToolCall{
			{ID: "call_0_0", Type: "function", Function: llm.FunctionCall{Name: "now", Arguments: `{}`}}}},
		wantFinish: "length",
	}, {
		name: "safety with empty content",
		cand: Candidate{FinishReason: "SAFETY"},
		want: llm.Message{Role: "assistant", Content: llm.TextContent("")}, wantFinish: "content_filter",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, finish := candidateMessage(tt.cand, tt.choice)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if finish != tt.wantFinish {
				t.Errorf("finish = %q, want %q", finish, tt.wantFinish)
			}
		})
	}
}

func TestFinishReason(t *testing.T) {
	want := map[string]string{"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
		"BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter", "IMAGE_SAFETY": "content_filter",
		"OTHER": "stop", "": "stop"}
	got := map[string]string{}
	for r := range want {
		got[r] = FinishReason(r)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FinishReason (-want +got):\n%s", diff)
	}
}

func TestChatUsage(t *testing.T) {
	tests := []struct {
		name string
		in   *UsageMetadata
		want *llm.Usage
	}{
		{"none", nil, nil},
		{"thoughts count as completion, Gemini's total is kept",
			&UsageMetadata{PromptTokenCount: 100, CandidatesTokenCount: 10, ThoughtsTokenCount: 30, CachedContentTokenCount: 60, TotalTokenCount: 140},
			&llm.Usage{PromptTokens: 100, CompletionTokens: 40, TotalTokens: 140,
				PromptTokensDetails:     &llm.PromptTokensDetails{CachedTokens: 60},
				CompletionTokensDetails: &llm.CompletionTokensDetails{ReasoningTokens: 30}}},
		{"tool-use prompt tokens stay in Gemini's total",
			&UsageMetadata{PromptTokenCount: 100, CandidatesTokenCount: 10, ToolUsePromptTokenCount: 5, TotalTokenCount: 115},
			&llm.Usage{PromptTokens: 100, CompletionTokens: 10, TotalTokens: 115}},
		{"no total: the sum", &UsageMetadata{PromptTokenCount: 3, CandidatesTokenCount: 4},
			&llm.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ChatUsage(tt.in)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(llm.Usage{}, "Raw")); diff != "" {
				t.Errorf("ChatUsage (-want +got):\n%s", diff)
			}
			if got != nil {
				var back UsageMetadata
				if err := json.Unmarshal(got.Raw, &back); err != nil || back != *tt.in {
					t.Errorf("raw usage %s does not keep the upstream's numbers (%v)", got.Raw, err)
				}
			}
		})
	}
}

// errView is how an error was classified.
type errView = dialecttest.ErrView

var failCase = dialecttest.Case

func sseStream(events string) *stream {
	body := io.NopCloser(strings.NewReader(events))
	return &stream{c: &Client{Name: "gem", APIKey: "AIza-test"}, body: body, r: sse.NewReader(body), model: "gemini-x", id: "chatcmpl-g", created: 1}
}

func TestStream(t *testing.T) {
	data := func(s string) string { return "data: " + s + "\r\n\r\n" }
	chunk := func(model string, d llm.Delta, finish *string) llm.ChatChunk {
		return llm.ChatChunk{ID: "chatcmpl-g", Object: "chat.completion.chunk", Created: 1, Model: model,
			Choices: []llm.ChunkChoice{{Delta: d, FinishReason: finish}}}
	}
	const model = "gemini-2.5-flash-001"
	roleChunk := chunk(model, llm.Delta{Role: "assistant", Content: llm.Ptr("")}, nil)
	dialecttest.RunStream(t, func(events string) provider.ChatStream { return sseStream(events) }, []dialecttest.StreamCase{{
		Name: "thought, text, function calls, usage from the last event",
		Events: data(`{"candidates":[{"content":{"role":"model","parts":[{"text":"hmm","thought":true},{"text":"Checking."}]},"index":0}],`+
			`"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":1,"totalTokenCount":10},"modelVersion":"`+model+`"}`) +
			data(`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"weather","args":{"city": "Hangzhou"}}},`+
				`{"functionCall":{"name":"now","args":{}}}]},"finishReason":"STOP","index":0}],`+
				`"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":5,"thoughtsTokenCount":2,"totalTokenCount":16},"modelVersion":"`+model+`"}`),
		Want: []llm.ChatChunk{roleChunk,
			chunk(model, llm.Delta{ReasoningContent: llm.Ptr("hmm")}, nil),
			chunk(model, llm.Delta{Content: llm.Ptr("Checking.")}, nil),
			chunk(model, llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(0), ID: "call_0_0", Type: "function",
				Function: llm.FunctionCall{Name: "weather", Arguments: `{"city":"Hangzhou"}`}}}}, nil),
			chunk(model, llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(1), ID: "call_0_1", Type: "function",
				Function: llm.FunctionCall{Name: "now", Arguments: `{}`}}}}, nil),
			chunk(model, llm.Delta{}, llm.Ptr("tool_calls")),
			{ID: "chatcmpl-g", Object: "chat.completion.chunk", Created: 1, Model: model, Choices: []llm.ChunkChoice{},
				Usage: &llm.Usage{PromptTokens: 9, CompletionTokens: 7, TotalTokens: 16,
					CompletionTokensDetails: &llm.CompletionTokensDetails{ReasoningTokens: 2}}},
		},
	}, {
		Name:   "max tokens without usage: no usage chunk",
		Events: data(`{"candidates":[{"content":{"parts":[{"text":"Hel"}]},"finishReason":"MAX_TOKENS"}]}`),
		Want: []llm.ChatChunk{chunk("gemini-x", llm.Delta{Role: "assistant", Content: llm.Ptr("")}, nil),
			chunk("gemini-x", llm.Delta{Content: llm.Ptr("Hel")}, nil), chunk("gemini-x", llm.Delta{}, llm.Ptr("length"))},
	}, {
		Name:    "a blocked prompt",
		Events:  data(`{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9}}`),
		WantErr: &errView{Kind: provider.KindContentFilter, Code: "content_filter", Provider: "gem"},
	}, {
		Name: "an error event mid-stream",
		Events: data(`{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}],"modelVersion":"`+model+`"}`) +
			data(`{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`),
		Want:    []llm.ChatChunk{roleChunk, chunk(model, llm.Delta{Content: llm.Ptr("Hi")}, nil)},
		WantErr: &errView{Kind: provider.KindOverloaded, Code: "UNAVAILABLE", Provider: "gem", Status: http.StatusOK},
	}, {
		Name:    "an error event without a known status is an upstream failure",
		Events:  data(`{"error":{"code":500,"message":"boom"}}`),
		WantErr: &errView{Kind: provider.KindUpstream, Provider: "gem", Status: http.StatusOK},
	}, {
		Name:    "ended without a finish reason",
		Events:  data(`{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}`),
		Want:    []llm.ChatChunk{chunk("gemini-x", llm.Delta{Role: "assistant", Content: llm.Ptr("")}, nil), chunk("gemini-x", llm.Delta{Content: llm.Ptr("Hi")}, nil)},
		WantErr: &errView{Kind: provider.KindUnavailable, Provider: "gem"},
	}, {
		Name:    "malformed event",
		Events:  data(`{"candidates":`),
		WantErr: &errView{Kind: provider.KindBadResponse},
	}}, cmpopts.IgnoreFields(llm.Usage{}, "Raw"))
}

func TestFail(t *testing.T) {
	body := func(code int, status, msg, reason string) string {
		details := ""
		if reason != "" {
			details = `,"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"` + reason + `"}]`
		}
		return fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q%s}}`, code, msg, status, details)
	}
	dialecttest.RunFail(t, "gem", (&Client{Name: "gem", APIKey: "AIza-test"}).fail, []dialecttest.FailCase{
		failCase("a bad key answered with 400", 400, "", body(400, "INVALID_ARGUMENT", "API key not valid.", "API_KEY_INVALID"),
			errView{Kind: provider.KindUpstreamAuth, Code: "INVALID_ARGUMENT"}),
		failCase("context too long", 400, "", body(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", ""),
			errView{Kind: provider.KindContextLength, Code: "INVALID_ARGUMENT"}),
		failCase("plain invalid argument", 400, "", body(400, "INVALID_ARGUMENT", "Invalid value at 'contents'", ""),
			errView{Kind: provider.KindInvalidRequest, Code: "INVALID_ARGUMENT"}),
		failCase("free tier not in region", 400, "", body(400, "FAILED_PRECONDITION", "User location is not supported", ""),
			errView{Kind: provider.KindInvalidRequest, Code: "FAILED_PRECONDITION"}),
		failCase("permission denied", 403, "", body(403, "PERMISSION_DENIED", "denied", ""), errView{Kind: provider.KindUpstreamAuth, Code: "PERMISSION_DENIED"}),
		failCase("unknown model", 404, "", body(404, "NOT_FOUND", "models/x is not found", ""), errView{Kind: provider.KindNotFound, Code: "NOT_FOUND"}),
		failCase("quota with retry-after", 429, "30", body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", ""),
			errView{Kind: provider.KindRateLimited, Code: "RESOURCE_EXHAUSTED", RetryAfter: 30 * time.Second}),
		failCase("internal", 500, "", body(500, "INTERNAL", "An internal error has occurred", ""), errView{Kind: provider.KindUpstream, Code: "INTERNAL"}),
		failCase("overloaded", 503, "", body(503, "UNAVAILABLE", "The model is overloaded.", ""), errView{Kind: provider.KindOverloaded, Code: "UNAVAILABLE"}),
		failCase("deadline", 504, "", body(504, "DEADLINE_EXCEEDED", "Deadline expired", ""), errView{Kind: provider.KindTimeout, Code: "DEADLINE_EXCEEDED"}),
		failCase("not JSON", 502, "", "<html>bad gateway</html>", errView{Kind: provider.KindUpstream}),
	})
}

func TestBlocked(t *testing.T) {
	c := &Client{Name: "gem"}
	tests := []struct {
		name string
		in   string
		want errView
	}{
		{"prompt blocked", `{"promptFeedback":{"blockReason":"SAFETY"}}`, errView{Kind: provider.KindContentFilter, Code: "content_filter", Provider: "gem"}},
		{"no candidates and no reason", `{"usageMetadata":{"promptTokenCount":3}}`, errView{Kind: provider.KindBadResponse}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g Response
			if err := json.Unmarshal([]byte(tt.in), &g); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, dialecttest.View(c.blocked(&g))); diff != "" {
				t.Errorf("blocked (-want +got):\n%s", diff)
			}
		})
	}
}
