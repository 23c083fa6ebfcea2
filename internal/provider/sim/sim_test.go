package sim

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

func req(model string) *llm.ChatRequest {
	return &llm.ChatRequest{Model: model, Messages: []llm.Message{{Role: "user", Content: llm.TextContent("hello tide")}}}
}

func drain(t *testing.T, s provider.ChatStream) (string, *llm.Usage, error) {
	t.Helper()
	var b strings.Builder
	var u *llm.Usage
	for s.Next() {
		c := s.Chunk()
		if c.Usage != nil {
			u = c.Usage
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				b.WriteString(*ch.Delta.Content)
			}
		}
	}
	return b.String(), u, s.Err()
}

func TestDeterministicUnderSeed(t *testing.T) {
	ctx := context.Background()
	a, _ := New("sim", 42, nil).ChatCompletion(ctx, req("fast"))
	b, _ := New("sim", 42, nil).ChatCompletion(ctx, req("fast"))
	c, _ := New("sim", 43, nil).ChatCompletion(ctx, req("fast"))
	if a.Choices[0].Message.Content.Text != b.Choices[0].Message.Content.Text {
		t.Error("same seed, different answers")
	}
	if a.Choices[0].Message.Content.Text == c.Choices[0].Message.Content.Text {
		t.Error("different seeds, same answer")
	}
	if !strings.HasPrefix(a.Choices[0].Message.Content.Text, Marker) || a.SystemFingerprint != Fingerprint {
		t.Error("a simulated answer is not marked as simulated")
	}
}

func TestStreamMatchesWholeAnswer(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", OutputTokens: 40}})
	whole, err := f.ChatCompletion(context.Background(), req("m"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.ChatCompletionStream(context.Background(), req("m"))
	if err != nil {
		t.Fatal(err)
	}
	text, usage, err := drain(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(whole.Choices[0].Message.Content.Text, text); d != "" {
		t.Error(d)
	}
	if usage.CompletionTokens != 40 || !cmp.Equal(whole.Usage, usage) {
		t.Errorf("usage %+v vs %+v", usage, whole.Usage)
	}
}

func TestPacing(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", TTFT: 30 * time.Millisecond, TokensPerSecond: 100, OutputTokens: 6}})
	start := time.Now()
	s, err := f.ChatCompletionStream(context.Background(), req("m"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := drain(t, s); err != nil {
		t.Fatal(err)
	}
	// TTFT plus five gaps of 10ms: a lower bound only, never an upper one.
	if d := time.Since(start); d < 75*time.Millisecond {
		t.Errorf("stream took %v, want at least 80ms of simulated time", d)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	f := New("sim", 1, []Model{
		{Name: "e429", Fault: Fault{Kind: Fault429, RetryAfter: 2 * time.Second}},
		{Name: "cut", OutputTokens: 10, Fault: Fault{Kind: FaultCut, AfterChunks: 3}},
		{Name: "half", Fault: Fault{Kind: Fault500, Rate: 0.5}},
		{Name: "small", ContextWindow: 3},
	})
	_, err := f.ChatCompletion(ctx, req("e429"))
	if e := provider.AsError(err); e.Kind != provider.KindRateLimited || e.RetryAfter != 2*time.Second {
		t.Errorf("429 fault: %v", err)
	}
	s, err := f.ChatCompletionStream(ctx, req("cut"))
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := drain(t, s)
	if provider.AsError(err).Kind != provider.KindUnavailable || strings.Count(text, " ") != 2 {
		t.Errorf("cut after 3 content chunks: text %q err %v", text, err)
	}
	failed := 0
	for i := 0; i < 200; i++ {
		if _, err := f.ChatCompletion(ctx, req("half")); err != nil {
			failed++
		}
	}
	if failed < 70 || failed > 130 {
		t.Errorf("a 50%% fault rate failed %d of 200", failed)
	}
	if _, err := f.ChatCompletion(ctx, req("small")); provider.AsError(err).Kind != provider.KindContextLength {
		t.Errorf("context window: %v", err)
	}
}

func TestToolCallsAndJSONMode(t *testing.T) {
	f := New("sim", 1, nil)
	r := req("fast")
	r.Tools = []llm.Tool{{Type: "function", Function: llm.ToolFunction{Name: "lookup",
		Parameters: json.RawMessage(`{"type":"object","properties":{"q":{"type":"string"},"n":{"type":"integer"},"mode":{"enum":["a","b"]}}}`)}}}
	resp, err := f.ChatCompletion(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	tc := resp.Choices[0].Message.ToolCalls
	var args map[string]any
	if len(tc) != 1 || json.Unmarshal([]byte(tc[0].Function.Arguments), &args) != nil || args["q"] == nil || args["n"] == nil {
		t.Errorf("tool call = %+v", tc)
	}
	r.Tools, r.ResponseFormat = nil, &llm.ResponseFormat{Type: "json_object"}
	resp, _ = f.ChatCompletion(context.Background(), r)
	if !json.Valid([]byte(resp.Choices[0].Message.Content.Text)) {
		t.Errorf("JSON mode answer is not JSON: %s", resp.Choices[0].Message.Content.Text)
	}
}

func TestHugeAnswerIsLazy(t *testing.T) {
	f := New("sim", 1, []Model{{Name: "m", OutputTokens: 50_000_000}})
	s, err := f.ChatCompletionStream(context.Background(), req("m"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && s.Next(); i++ {
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
}
