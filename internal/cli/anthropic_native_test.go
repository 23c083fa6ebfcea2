package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/tidegate/tidegate/internal/provider/providertest"
)

// anthropicFixture reads Anthropic's recorded wire format.
func anthropicFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "provider", "providertest", "testdata", "anthropic", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// received checks what the Anthropic upstream fixture was sent: every
// fragment, and the target's own model name.
func received(t *testing.T, up *providertest.Replay, path string, fragments ...string) {
	t.Helper()
	got := up.Last()
	body := string(got.Body)
	if got.Path != path || got.Header.Get("x-api-key") != "sk-ant-upstream-0001" {
		t.Errorf("upstream got %s with key %q", got.Path, got.Header.Get("x-api-key"))
	}
	for _, f := range append(fragments, `"model":"claude-sonnet-4-5"`) {
		if !strings.Contains(body, f) {
			t.Errorf("upstream body lacks %s:\n%s", f, body)
		}
	}
}

// TestAnthropicNative drives the official SDK against tidegate in front of
// an Anthropic-speaking upstream fixture: what Anthropic users pay for
// reaches Anthropic, and its answers come back whole.
func TestAnthropicNative(t *testing.T) {
	up := providertest.NewReplay(t)
	down := providertest.NewReplay(t)
	down.Answer(529, anthropicFixture(t, "error.overloaded.529.json"), false)
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
providers:
  - name: anth
    type: anthropic
    base_url: %s
    api_key: sk-ant-upstream-0001
    models: [claude-sonnet-4-5]
  - name: down
    type: anthropic
    base_url: %s
    api_key: sk-ant-down-0002
    models: [claude-opus-4-1]
  - name: sim
    type: sim
    sim: {seed: 3, models: [{name: fast, output_tokens: 12}]}
models:
  - {name: claude, targets: [anth/claude-sonnet-4-5]}
  - {name: claude-failover, targets: [down/claude-opus-4-1, anth/claude-sonnet-4-5]}
  - {name: overloaded, targets: [down/claude-opus-4-1]}
  - {name: chat, targets: [sim/fast]}
`, testKey, up.Server.URL, down.Server.URL))
	client := anthropicClient(g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	user := func(blocks ...anthropic.ContentBlockParamUnion) []anthropic.MessageParam {
		return []anthropic.MessageParam{anthropic.NewUserMessage(blocks...)}
	}

	t.Run("cache_control", func(t *testing.T) {
		up.Answer(http.StatusOK, anthropicFixture(t, "native_answer.text.json"), false)
		var hdr *http.Response
		msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude", MaxTokens: 1024,
			System: []anthropic.TextBlockParam{
				{Text: "You are a careful analyst."},
				{Text: "<the whole annual report>", CacheControl: anthropic.NewCacheControlEphemeralParam()},
			},
			Messages:     user(anthropic.NewTextBlock("Summarise the risks.")),
			ServiceTier:  anthropic.MessageNewParamsServiceTierStandardOnly,
			OutputConfig: anthropic.OutputConfigParam{Effort: anthropic.OutputConfigEffortMedium},
		}, aoption.WithJSONSet("top_k", 40), aoption.WithResponseInto(&hdr))
		if err != nil {
			t.Fatal(err)
		}
		received(t, up, "/v1/messages", `"cache_control":{"type":"ephemeral"}`, `"top_k":40`, `"service_tier":"standard_only"`, `"output_config":{"effort":"medium"}`)
		if msg.Usage.CacheReadInputTokens != 188086 || msg.Usage.InputTokens != 21 || msg.Usage.ServiceTier != "standard" {
			t.Errorf("usage not relayed: %+v", msg.Usage)
		}
		if id := hdr.Header.Get("request-id"); id == "" || id != hdr.Header.Get("x-request-id") {
			t.Errorf("request-id = %q, x-request-id = %q", id, hdr.Header.Get("x-request-id"))
		}
		// Billed from Anthropic's usage: the cache reads are in the ledger.
		deadline := time.Now().Add(5 * time.Second)
		for {
			rows, err := g.run.Store.UsageReport(ctx, "provider", time.Time{}, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) == 1 && rows[0].Group == "anth" && rows[0].CachedTokens == 188086 && rows[0].PromptTokens == 21+188086 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ledger = %+v, want the cache reads billed", rows)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("thinking and tools continuation", func(t *testing.T) {
		tool := anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{Name: "get_weather",
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}
		params := anthropic.MessageNewParams{
			Model: "claude", MaxTokens: 4000, Thinking: anthropic.ThinkingConfigParamOfEnabled(3000),
			Tools: []anthropic.ToolUnionParam{tool}, Messages: user(anthropic.NewTextBlock("Weather in Hangzhou?")),
		}
		up.Answer(http.StatusOK, anthropicFixture(t, "chat.json"), false)
		msg, err := client.Messages.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		received(t, up, "/v1/messages", `"thinking":{"budget_tokens":3000,"type":"enabled"}`, `"max_tokens":4000`)
		if len(msg.Content) != 3 || msg.Content[0].Signature != "EqQBCgIYAhIM1gbcDa9GJwZA2b3h" || msg.Content[2].ID != "toolu_01A09q90qw90lq917835lq9" {
			t.Fatalf("content = %+v", msg.Content)
		}
		params.Messages = append(params.Messages, msg.ToParam(),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock(msg.Content[2].ID, "station offline", true)))
		up.Answer(http.StatusOK, anthropicFixture(t, "native_answer.text.json"), false)
		msg, err = client.Messages.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		// The signature goes back, so Anthropic accepts the continuation.
		received(t, up, "/v1/messages", `"signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3h"`, `"is_error":true`, `"tool_use_id":"toolu_01A09q90qw90lq917835lq9"`)
		if msg.StopReason != anthropic.StopReasonEndTurn {
			t.Errorf("stop = %q", msg.StopReason)
		}
	})

	t.Run("document", func(t *testing.T) {
		doc := anthropic.NewDocumentBlock(anthropic.Base64PDFSourceParam{Data: "JVBERi0xLjQKJcfsj6IK"})
		up.Answer(http.StatusOK, anthropicFixture(t, "native_answer.text.json"), false)
		if _, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude", MaxTokens: 512,
			Messages: user(doc, anthropic.NewTextBlock("What does it say?"))}); err != nil {
			t.Fatal(err)
		}
		received(t, up, "/v1/messages", `"type":"document"`, `"data":"JVBERi0xLjQKJcfsj6IK"`)
		// A target that cannot take a document refuses it rather than drop it.
		_, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "chat", MaxTokens: 512,
			Messages: user(doc, anthropic.NewTextBlock("What does it say?"))})
		var apiErr *anthropic.Error
		if !asError(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Type() != "invalid_request_error" || !strings.Contains(apiErr.Message, "document") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("stream", func(t *testing.T) {
		up.Answer(http.StatusOK, anthropicFixture(t, "stream.sse"), true)
		// The first target is overloaded before the commit point: the next answers.
		var hdr *http.Response
		stream := client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: "claude-failover", MaxTokens: 2048,
			Messages: user(anthropic.NewTextBlock("Weather?"))}, aoption.WithResponseInto(&hdr))
		acc := anthropic.Message{}
		for stream.Next() {
			if err := acc.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		received(t, up, "/v1/messages", `"stream":true`)
		if len(acc.Content) != 3 || acc.Content[0].Signature != "EqQBCgIYAhIM1gbcDa9GJwZA2b3h" || acc.Content[1].Text != "Okay, let's check the weather." ||
			acc.Content[2].ID != "toolu_01T1x1fJ34qAmk2tNTrN7Up6" || string(acc.Content[2].Input) != `{"city": "Hangzhou"}` {
			t.Errorf("content = %+v", acc.Content)
		}
		if acc.Usage.InputTokens != 472 || acc.Usage.CacheReadInputTokens != 1000 {
			t.Errorf("usage = %+v", acc.Usage)
		}
		if hdr.Header.Get("x-tidegate-attempts") != "2" || hdr.Header.Get("x-tidegate-route") != "anth/claude-sonnet-4-5" {
			t.Errorf("route %q after %q attempts", hdr.Header.Get("x-tidegate-route"), hdr.Header.Get("x-tidegate-attempts"))
		}
	})

	t.Run("count_tokens", func(t *testing.T) {
		up.Answer(http.StatusOK, anthropicFixture(t, "native_count_tokens.json"), false)
		var hdr *http.Response
		n, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "claude",
			Messages: user(anthropic.NewTextBlock("How many tokens is this?"))}, aoption.WithResponseInto(&hdr))
		if err != nil {
			t.Fatal(err)
		}
		received(t, up, "/v1/messages/count_tokens", `"How many tokens is this?"`)
		if n.InputTokens != 2095 || hdr.Header.Get("x-tidegate-estimated") != "" {
			t.Errorf("count = %d, estimated %q", n.InputTokens, hdr.Header.Get("x-tidegate-estimated"))
		}
		n, err = client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "chat",
			Messages: user(anthropic.NewTextBlock("How many tokens is this?"))}, aoption.WithResponseInto(&hdr))
		if err != nil || n.InputTokens <= 0 || hdr.Header.Get("x-tidegate-estimated") != "true" {
			t.Errorf("estimated count = %+v, %v, header %q", n, err, hdr.Header.Get("x-tidegate-estimated"))
		}
	})

	t.Run("models in Anthropic's shape", func(t *testing.T) {
		page, err := client.Models.List(ctx, anthropic.ModelListParams{})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, m := range page.Data {
			ids[m.ID] = m.Type == "model" && m.DisplayName != "" && !m.CreatedAt.IsZero()
		}
		if !ids["claude"] || !ids["anth/claude-sonnet-4-5"] {
			t.Errorf("models = %+v", page.Data)
		}
		m, err := client.Models.Get(ctx, "claude", anthropic.ModelGetParams{})
		if err != nil || m.ID != "claude" || m.Type != "model" {
			t.Errorf("get = %+v, %v", m, err)
		}
	})

	t.Run("overloaded", func(t *testing.T) {
		// The upstream's 529 three times, then tidegate's own: no healthy target.
		for i := 0; i < 4; i++ {
			_, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "overloaded", MaxTokens: 16,
				Messages: user(anthropic.NewTextBlock("hi"))})
			var apiErr *anthropic.Error
			if !asError(err, &apiErr) || apiErr.StatusCode != 529 || apiErr.Type() != anthropic.ErrorTypeOverloadedError {
				t.Fatalf("call %d: err = %v", i, err)
			}
			if i == 3 && !strings.Contains(apiErr.Message, "unhealthy") {
				t.Errorf("the fourth call should be refused by tidegate: %s", apiErr.Message)
			}
		}
	})

	t.Run("unknown messages route", func(t *testing.T) {
		resp, err := http.DefaultClient.Do(authed(mustRequest(t, http.MethodPost, g.URL+"/v1/messages/batches", `{}`)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Type  string `json:"type"`
			Error struct {
				Type string `json:"type"`
			} `json:"error"`
		}
		b, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(b, &body); resp.StatusCode != 404 || body.Type != "error" || body.Error.Type != "not_found_error" {
			t.Errorf("%d %s", resp.StatusCode, b)
		}
	})
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}
