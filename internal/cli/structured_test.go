package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/tidegate/tidegate/internal/config"
)

// startDemo serves the embedded demo config (the sim fleet and its public
// names), as `tidegate serve` does with no config, on a loopback port.
func startDemo(t *testing.T) *gatewayProc {
	t.Helper()
	cfg := config.Default()
	cfg.Store, cfg.MasterKey = "sqlite:"+filepath.Join(t.TempDir(), "t.db"), testKey
	return serveConfig(t, cfg)
}

// itinerary is what the structured-output request asks for, as a Go
// program would decode it.
type itinerary struct {
	City  string `json:"city"`
	Days  int    `json:"days"`
	Mode  string `json:"mode"`
	Stops []struct {
		Port string    `json:"port"`
		At   time.Time `json:"at"`
	} `json:"stops"`
	Note *string `json:"note"`
}

var itinerarySchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"city": map[string]any{"type": "string"},
		"days": map[string]any{"type": "integer", "minimum": 1, "maximum": 7},
		"mode": map[string]any{"type": "string", "enum": []string{"ferry", "train", "bus"}},
		"stops": map[string]any{"type": "array", "minItems": 1, "items": map[string]any{
			"type":                 "object",
			"properties":           map[string]any{"port": map[string]any{"type": "string"}, "at": map[string]any{"type": "string", "format": "date-time"}},
			"required":             []string{"port", "at"},
			"additionalProperties": false,
		}},
		"note": map[string]any{"type": []string{"string", "null"}},
	},
	"required":             []string{"city", "days", "mode", "stops", "note"},
	"additionalProperties": false,
}

func checkItinerary(t *testing.T, content string) {
	t.Helper()
	var it itinerary
	dec := json.NewDecoder(strings.NewReader(content))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&it); err != nil {
		t.Fatalf("the answer does not decode into the Go struct: %v\n%s", err, content)
	}
	if it.City == "" || it.Days < 1 || it.Days > 7 || !slices.Contains([]string{"ferry", "train", "bus"}, it.Mode) ||
		len(it.Stops) == 0 || it.Stops[0].Port == "" || it.Stops[0].At.IsZero() {
		t.Errorf("the answer breaks its schema: %+v", it)
	}
}

// TestStructuredOutputOnTheDemo drives openai-go v3's structured outputs
// against the demo: a json_schema answer decodes into a Go struct, whole
// and streamed; a required tool call's arguments decode into the tool's
// struct; stop, logprobs, token-id embeddings and image URLs work.
func TestStructuredOutputOnTheDemo(t *testing.T) {
	g := startDemo(t)
	client := openaiClient(g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	params := openai.ChatCompletionNewParams{
		Model:    "chat-fast",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Plan a trip along the coast.")},
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "itinerary", Schema: itinerarySchema, Strict: openai.Bool(true)},
		}},
	}

	t.Run("json_schema", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		checkItinerary(t, resp.Choices[0].Message.Content)
	})

	t.Run("json_schema streamed", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		checkItinerary(t, acc.Choices[0].Message.Content)
	})

	t.Run("required tool call", func(t *testing.T) {
		p := openai.ChatCompletionNewParams{
			Model:    "chat",
			Messages: params.Messages,
			Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
				Name: "book", Parameters: itinerarySchema, Strict: openai.Bool(true),
			})},
			ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		}
		resp, err := client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		calls := resp.Choices[0].Message.ToolCalls
		if len(calls) != 1 || calls[0].Function.Name != "book" {
			t.Fatalf("tool calls %+v", calls)
		}
		checkItinerary(t, calls[0].Function.Arguments)
	})

	t.Run("stop and logprobs", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:       "chat-fast",
			Messages:    params.Messages,
			Stop:        openai.ChatCompletionNewParamsStopUnion{OfString: openai.String("]")},
			Logprobs:    openai.Bool(true),
			TopLogprobs: openai.Int(2),
		})
		if err != nil {
			t.Fatal(err)
		}
		ch := resp.Choices[0]
		if ch.Message.Content != "[simulated" || ch.FinishReason != "stop" {
			t.Errorf("answer %q (%s), want it cut before the stop sequence", ch.Message.Content, ch.FinishReason)
		}
		if len(ch.Logprobs.Content) == 0 || len(ch.Logprobs.Content[0].TopLogprobs) != 2 {
			t.Errorf("logprobs %+v", ch.Logprobs)
		}
	})

	t.Run("token-id embeddings", func(t *testing.T) {
		resp, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokenArrays: [][]int64{{101, 2023}, {7}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 2 || resp.Usage.PromptTokens != 3 {
			t.Errorf("%d vectors, usage %+v", len(resp.Data), resp.Usage)
		}
	})

	t.Run("image url", func(t *testing.T) {
		resp, err := client.Images.Generate(ctx, openai.ImageGenerateParams{Model: "sim/fast", Prompt: "a tide gate",
			ResponseFormat: openai.ImageGenerateParamsResponseFormatURL})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 1 || !strings.HasPrefix(resp.Data[0].URL, "data:image/png;base64,") {
			t.Errorf("image %+v", resp.Data)
		}
	})
}
