package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// TestResponsesSDK drives the Responses API with the official openai-go
// client against a running tidegate on the sim fleet: plain, streamed (each
// event through the SDK's own accumulator, which checks their fields and
// order), a function tool round trip, previous_response_id, Get and Delete,
// and the usage recorded in the ledger as for chat.
func TestResponsesSDK(t *testing.T) {
	g := startGateway(t, `
store: STORE
master_key: `+testKey+`
providers:
  - name: sim
    type: sim
    sim: {seed: 3, models: [{name: fast, output_tokens: 12}]}
models:
  - {name: chat, targets: [sim/fast]}
`)
	client := openaiClient(g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:        "chat",
		Instructions: openai.String("Be brief."),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != responses.ResponseStatusCompleted || !strings.HasPrefix(first.OutputText(), sim.Marker) ||
		first.Usage.OutputTokens != 12 || first.Usage.InputTokens == 0 || first.Usage.TotalTokens != first.Usage.InputTokens+12 {
		t.Fatalf("first response: status %q text %q usage %+v", first.Status, first.OutputText(), first.Usage)
	}

	billed := first.Usage.OutputTokens // what the answers reported, for the ledger to match
	t.Run("streaming", func(t *testing.T) {
		stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
			Model:              "chat",
			Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("And more?")},
			PreviousResponseID: openai.String(first.ID),
		})
		var acc responses.ResponseAccumulator
		var text strings.Builder
		var completed responses.Response
		for stream.Next() {
			ev := stream.Current()
			var server responses.ResponsesServerEventUnion
			if err := json.Unmarshal([]byte(ev.RawJSON()), &server); err != nil {
				t.Fatal(err)
			}
			if err := acc.AddEvent(server); err != nil {
				t.Fatalf("the SDK's accumulator refused %s: %v\n%s", ev.Type, err, ev.RawJSON())
			}
			switch ev.Type {
			case "response.output_text.delta":
				text.WriteString(ev.Delta)
			case "response.completed":
				completed = ev.AsResponseCompleted().Response
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		rebuilt, err := acc.ReconstructedResponse()
		if err != nil {
			t.Fatal(err)
		}
		if completed.OutputText() != text.String() || rebuilt.OutputText() != text.String() || !strings.HasPrefix(text.String(), sim.Marker) {
			t.Errorf("deltas %q, completed %q, accumulated %q", text.String(), completed.OutputText(), rebuilt.OutputText())
		}
		if completed.PreviousResponseID != first.ID || completed.Usage.OutputTokens != 12 {
			t.Errorf("completed: previous %q usage %+v", completed.PreviousResponseID, completed.Usage)
		}
		billed += completed.Usage.OutputTokens
		got, err := client.Responses.Get(ctx, completed.ID, responses.ResponseGetParams{})
		if err != nil || got.OutputText() != text.String() {
			t.Errorf("Get of the streamed response: %v, %q", err, got.OutputText())
		}
	})

	t.Run("function tools round trip", func(t *testing.T) {
		tools := []responses.ToolUnionParam{responses.ToolParamOfFunction("get_weather",
			map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}}, true)}
		called, err := client.Responses.New(ctx, responses.ResponseNewParams{
			Model: "chat", Tools: tools,
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Weather in Paris?")},
		})
		if err != nil {
			t.Fatal(err)
		}
		billed += called.Usage.OutputTokens
		var call responses.ResponseOutputItemUnion
		for _, o := range called.Output {
			if o.Type == "function_call" {
				call = o
			}
		}
		if call.Name != "get_weather" || call.CallID == "" || !json.Valid([]byte(call.Arguments.OfString)) {
			t.Fatalf("no function call: %+v", called.Output)
		}
		out := responses.ResponseInputItemParamOfFunctionCallOutput("18C")
		out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
		final, err := client.Responses.New(ctx, responses.ResponseNewParams{
			Model: "chat", Tools: tools, PreviousResponseID: openai.String(called.ID),
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{out}},
		})
		if err != nil {
			t.Fatal(err)
		}
		billed += final.Usage.OutputTokens
		if !strings.HasPrefix(final.OutputText(), sim.Marker) || final.PreviousResponseID != called.ID {
			t.Errorf("after the tool output: %q (previous %q)", final.OutputText(), final.PreviousResponseID)
		}
	})

	t.Run("get and delete", func(t *testing.T) {
		got, err := client.Responses.Get(ctx, first.ID, responses.ResponseGetParams{})
		if err != nil || got.ID != first.ID || got.OutputText() != first.OutputText() {
			t.Fatalf("Get: %v %+v", err, got)
		}
		if err := client.Responses.Delete(ctx, first.ID); err != nil {
			t.Fatal(err)
		}
		var apiErr *openai.Error
		if _, err := client.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
			t.Errorf("Get after Delete: %v", err)
		}
		_, err = client.Responses.New(ctx, responses.ResponseNewParams{Model: "chat", PreviousResponseID: openai.String(first.ID),
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Still there?")}})
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "previous_response_not_found" {
			t.Errorf("continuing a deleted response: %v", err)
		}
	})

	t.Run("billed as chat", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+"/admin/usage?group_by=model", nil)
		resp, err := http.DefaultClient.Do(authed(req))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var usage struct {
			Data []struct {
				Group            string `json:"group"`
				Requests         int64  `json:"requests"`
				CompletionTokens int64  `json:"completion_tokens"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &usage); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		var requests, tokens int64
		for _, row := range usage.Data {
			requests, tokens = requests+row.Requests, tokens+row.CompletionTokens
		}
		// first, streamed, the tool call and its follow-up (the refused continuation never reached a model)
		if requests != 4 || tokens != billed {
			t.Errorf("ledger: %d requests, %d completion tokens; want 4 and %d\n%s", requests, tokens, billed, b)
		}
	})
}
