package gateway

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
)

// TestEstimateNeverWraps: whatever numbers reach it, a reservation's token
// counts stay between 0 and estimateCeiling: huge max tokens × n saturate
// (they wrapped to nothing, and a hard budget admitted everything).
func TestEstimateNeverWraps(t *testing.T) {
	msgs := []llm.Message{{Role: "user", Content: llm.TextContent("abcdef")}} // 6 + 16 bytes → 8 tokens
	tests := []struct {
		name                string
		maxTokens, maxComp  *int
		n                   *int
		wantPrompt, wantOut int64
	}{
		{"unset: the configured cap", nil, nil, nil, 8, 4096},
		{"max_tokens × n", llm.Ptr(100), nil, llm.Ptr(3), 8, 300},
		{"2^62 × 2 saturates", nil, llm.Ptr(1 << 62), llm.Ptr(2), 8, estimateCeiling},
		{"MaxInt × 128 saturates", llm.Ptr(math.MaxInt), nil, llm.Ptr(128), 8, estimateCeiling},
		{"MaxInt alone saturates", llm.Ptr(math.MaxInt), nil, nil, 8, estimateCeiling},
		{"2^39 × 3 saturates", llm.Ptr(1 << 39), nil, llm.Ptr(3), 8, estimateCeiling},
		{"huge n", llm.Ptr(2), nil, llm.Ptr(math.MaxInt), 8, estimateCeiling},
		{"negative max_tokens: the cap", llm.Ptr(-5), nil, llm.Ptr(2), 8, 8192},
		{"MinInt max_tokens: the cap", llm.Ptr(math.MinInt), nil, nil, 8, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &llm.ChatRequest{Messages: msgs, MaxTokens: tt.maxTokens, MaxCompletionTokens: tt.maxComp, N: tt.n}
			got := estimate(req, nil, 4096)
			want := Estimate{PromptTokens: tt.wantPrompt, OutputTokens: tt.wantOut}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
