package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

const outputTokens = 12

// sdkFleet starts the topology of the SDK tests: tidegate in front of an
// OpenAI-dialect upstream (the sim over HTTP) and an Anthropic-dialect
// upstream (a second tidegate's /v1/messages, itself on the sim).
func sdkFleet(t *testing.T) *gatewayProc {
	t.Helper()
	up := simUpstream(t, sim.Model{Name: "fast", OutputTokens: outputTokens}, sim.Model{Name: "embed"}, sim.Model{Name: "img"})
	claude := startGateway(t, `
store: STORE
master_key: upstream-anthropic-key
providers:
  - name: sim
    type: sim
    sim: {seed: 3, models: [{name: fast, output_tokens: 12}]}
models:
  - {name: claude-sim, targets: [sim/fast]}
`)
	return startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
providers:
  - name: upstream
    type: openai
    base_url: %s/v1
    api_key: sk-upstream-secret-0001
    models: [fast, embed, img]
  - name: claude
    type: anthropic
    base_url: %s
    api_key: upstream-anthropic-key
    models: [claude-sim]
models:
  - {name: gpt, targets: [upstream/fast]}
  - {name: claude, targets: [claude/claude-sim]}
  - {name: embed, targets: [upstream/embed]}
`, testKey, up.URL, claude.URL))
}

func openaiClient(g *gatewayProc) openai.Client {
	return openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
}

var weatherTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name:        "get_weather",
	Description: openai.String("Weather in a city"),
	Parameters: shared.FunctionParameters{
		"type":       "object",
		"properties": map[string]any{"city": map[string]any{"type": "string"}},
		"required":   []string{"city"},
	},
})

func TestOpenAISDK(t *testing.T) {
	g := sdkFleet(t)
	client := openaiClient(g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// "gpt" is served by an OpenAI-dialect upstream, "claude" by an Anthropic one.
	for _, model := range []string{"gpt", "claude"} {
		t.Run(model+"/chat", func(t *testing.T) {
			var hdr *http.Response
			resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Hello")},
			}, option.WithResponseInto(&hdr))
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Choices[0].Message.Content; !strings.HasPrefix(got, sim.Marker) {
				t.Errorf("content = %q, want the sim's answer", got)
			}
			if resp.Usage.CompletionTokens != outputTokens || resp.Usage.PromptTokens == 0 {
				t.Errorf("usage = %+v, want %d completion tokens and some prompt tokens", resp.Usage, outputTokens)
			}
			if resp.Choices[0].FinishReason != "stop" {
				t.Errorf("finish_reason = %q", resp.Choices[0].FinishReason)
			}
			if hdr.Header.Get("x-tidegate-route") == "" || hdr.Header.Get("x-tidegate-attempts") != "1" || hdr.Header.Get("x-request-id") == "" {
				t.Errorf("contract headers missing: %v", hdr.Header)
			}
		})

		t.Run(model+"/stream", func(t *testing.T) {
			stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:         model,
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream to me")},
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			acc := openai.ChatCompletionAccumulator{}
			chunks := 0
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if got := acc.Choices[0].Message.Content; !strings.HasPrefix(got, sim.Marker) {
				t.Errorf("streamed content = %q", got)
			}
			if chunks < outputTokens {
				t.Errorf("got %d chunks, want at least one per token", chunks)
			}
			if acc.Usage.CompletionTokens != outputTokens {
				t.Errorf("stream usage = %+v, want %d completion tokens", acc.Usage, outputTokens)
			}
		})

		t.Run(model+"/tools", func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:    model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Hangzhou?")},
				Tools:    []openai.ChatCompletionToolUnionParam{weatherTool},
			}
			resp, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			msg := resp.Choices[0].Message
			if len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "get_weather" || resp.Choices[0].FinishReason != "tool_calls" {
				t.Fatalf("want one get_weather call, got %+v (finish %q)", msg.ToolCalls, resp.Choices[0].FinishReason)
			}
			var args map[string]any
			if err := json.Unmarshal([]byte(msg.ToolCalls[0].Function.Arguments), &args); err != nil || args["city"] == nil {
				t.Errorf("arguments = %q", msg.ToolCalls[0].Function.Arguments)
			}
			// The other direction: the tool's result goes back, the model answers in text.
			params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage(`{"temp_c":21}`, msg.ToolCalls[0].ID))
			resp, err = client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Choices[0].Message.Content; !strings.HasPrefix(got, sim.Marker) || len(resp.Choices[0].Message.ToolCalls) != 0 {
				t.Errorf("after the tool result, got %+v", resp.Choices[0].Message)
			}

			// Streamed tool calls arrive whole through the accumulator.
			stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model: model, Messages: params.Messages[:1], Tools: params.Tools,
			})
			acc := openai.ChatCompletionAccumulator{}
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			calls := acc.Choices[0].Message.ToolCalls
			if len(calls) != 1 || calls[0].Function.Name != "get_weather" || !json.Valid([]byte(calls[0].Function.Arguments)) {
				t.Errorf("streamed tool calls = %+v", calls)
			}
		})
	}

	t.Run("n, seed and JSON mode", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Two answers as JSON")},
			N:        openai.Int(2),
			Seed:     openai.Int(7),
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{
				OfJSONObject: &shared.ResponseFormatJSONObjectParam{},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Choices) != 2 || resp.Choices[1].Index != 1 {
			t.Fatalf("choices = %d", len(resp.Choices))
		}
		for _, c := range resp.Choices {
			if !json.Valid([]byte(c.Message.Content)) {
				t.Errorf("JSON mode answer is not JSON: %s", c.Message.Content)
			}
		}
	})

	t.Run("images", func(t *testing.T) {
		resp, err := client.Images.Generate(ctx, openai.ImageGenerateParams{Model: "upstream/img", Prompt: "a tide gate at dawn", N: openai.Int(2)})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 2 || resp.Data[0].B64JSON == "" {
			t.Errorf("images = %+v", resp.Data)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		resp, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "embed",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"tide", "gate"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 2 || len(resp.Data[0].Embedding) == 0 || resp.Data[1].Index != 1 {
			t.Errorf("embeddings = %+v", resp.Data)
		}
	})

	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, m := range page.Data {
			ids[m.ID] = true
		}
		for _, want := range []string{"gpt", "claude", "embed", "upstream/fast", "claude/claude-sim"} {
			if !ids[want] {
				t.Errorf("models list lacks %q: %v", want, ids)
			}
		}
		m, err := client.Models.Get(ctx, "upstream/fast")
		if err != nil || m.ID != "upstream/fast" || m.OwnedBy != "upstream" {
			t.Errorf("get model = %+v, %v", m, err)
		}
		if _, err := client.Models.Get(ctx, "nope"); err == nil {
			t.Error("an unknown model was found")
		}
	})
}

func anthropicClient(g *gatewayProc) anthropic.Client {
	return anthropic.NewClient(aoption.WithBaseURL(g.URL), aoption.WithAPIKey(testKey), aoption.WithMaxRetries(0))
}

func TestAnthropicSDK(t *testing.T) {
	g := sdkFleet(t)
	client := anthropicClient(g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tool := anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
		Name: "get_weather",
		InputSchema: anthropic.ToolInputSchemaParam{
			Properties: map[string]any{"city": map[string]any{"type": "string"}},
			Required:   []string{"city"},
		},
	}}

	// /v1/messages served by an OpenAI-dialect upstream ("gpt"), and by an
	// Anthropic one through two translations ("claude").
	for _, model := range []string{"gpt", "claude"} {
		t.Run(model+"/message", func(t *testing.T) {
			msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{
				Model:     model,
				MaxTokens: 256,
				System:    []anthropic.TextBlockParam{{Text: "Be brief."}},
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello"))},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Content) != 1 || !strings.HasPrefix(msg.Content[0].Text, sim.Marker) {
				t.Fatalf("content = %+v", msg.Content)
			}
			if msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.OutputTokens != outputTokens || msg.Usage.InputTokens == 0 {
				t.Errorf("stop %q usage %+v", msg.StopReason, msg.Usage)
			}
		})

		t.Run(model+"/stream", func(t *testing.T) {
			stream := client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
				Model:     model,
				MaxTokens: 256,
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Stream to me"))},
			})
			acc := anthropic.Message{}
			for stream.Next() {
				if err := acc.Accumulate(stream.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if len(acc.Content) != 1 || !strings.HasPrefix(acc.Content[0].Text, sim.Marker) {
				t.Fatalf("content = %+v", acc.Content)
			}
			if acc.StopReason != anthropic.StopReasonEndTurn || acc.Usage.OutputTokens != outputTokens || acc.Usage.InputTokens == 0 {
				t.Errorf("stop %q usage %+v", acc.StopReason, acc.Usage)
			}
		})

		t.Run(model+"/tools", func(t *testing.T) {
			params := anthropic.MessageNewParams{
				Model:     model,
				MaxTokens: 256,
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Hangzhou?"))},
				Tools:     []anthropic.ToolUnionParam{tool},
			}
			msg, err := client.Messages.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 1 || msg.Content[0].Type != "tool_use" || msg.Content[0].Name != "get_weather" {
				t.Fatalf("want a get_weather tool_use, got %+v (stop %q)", msg.Content, msg.StopReason)
			}
			var input map[string]any
			if err := json.Unmarshal(msg.Content[0].Input, &input); err != nil || input["city"] == nil {
				t.Errorf("input = %s", msg.Content[0].Input)
			}
			params.Messages = append(params.Messages, msg.ToParam(),
				anthropic.NewUserMessage(anthropic.NewToolResultBlock(msg.Content[0].ID, `{"temp_c":21}`, false)))
			msg, err = client.Messages.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if msg.StopReason != anthropic.StopReasonEndTurn || !strings.HasPrefix(msg.Content[0].Text, sim.Marker) {
				t.Errorf("after the tool result, got %+v (stop %q)", msg.Content, msg.StopReason)
			}

			stream := client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
				Model: model, MaxTokens: 256, Messages: params.Messages[:1], Tools: params.Tools,
			})
			acc := anthropic.Message{}
			for stream.Next() {
				if err := acc.Accumulate(stream.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if acc.StopReason != anthropic.StopReasonToolUse || len(acc.Content) != 1 || acc.Content[0].Name != "get_weather" || !json.Valid(acc.Content[0].Input) {
				t.Errorf("streamed tool use = %+v (stop %q)", acc.Content, acc.StopReason)
			}
		})
	}

	t.Run("errors in Anthropic's shape", func(t *testing.T) {
		_, err := client.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "no-such-model", MaxTokens: 16,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		var apiErr *anthropic.Error
		if !asError(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.RawJSON(), `"not_found_error"`) {
			t.Errorf("err = %v", err)
		}
	})
}
