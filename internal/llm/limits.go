package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Bounds on the client numbers tidegate interprets. A request past one is
// refused (400, naming the param) before any arithmetic: a budget
// reservation multiplies max_tokens by n, and numbers near 2^63 would wrap it
// to nothing. Each bound is at least what any provider accepts.
const (
	// LimitOutputTokens bounds max_tokens and max_completion_tokens (and
	// /v1/messages' max_tokens and thinking.budget_tokens): 2^20, several
	// times the largest output any model offers.
	LimitOutputTokens = 1 << 20
	// LimitChoices bounds n on chat (OpenAI's own limit).
	LimitChoices = 128
	// LimitMessages bounds the messages of one request (Anthropic's own limit).
	LimitMessages = 100_000
	// LimitEmbeddingInputs bounds the inputs of one embeddings request (OpenAI's own limit).
	LimitEmbeddingInputs = 2048
	// LimitEmbeddingDimensions bounds an embeddings request's dimensions.
	LimitEmbeddingDimensions = 1 << 16
	// LimitImages bounds n on image generation (OpenAI's own limit).
	LimitImages = 10
)

// Within refuses an optional client number outside [lo, hi], naming param.
func Within(param string, v *int, lo, hi int) error {
	if v == nil || (*v >= lo && *v <= hi) {
		return nil
	}
	return &FieldError{Param: param, Code: "invalid_value",
		Message: fmt.Sprintf("%s must be between %d and %d, got %d", param, lo, hi, *v)}
}

// CheckLimits refuses a chat request whose numbers are past tidegate's bounds.
func (r *ChatRequest) CheckLimits() error {
	if len(r.Messages) > LimitMessages {
		return &FieldError{Param: "messages", Code: "invalid_value",
			Message: fmt.Sprintf("at most %d messages, got %d", LimitMessages, len(r.Messages))}
	}
	for _, err := range []error{
		Within("max_tokens", r.MaxTokens, 1, LimitOutputTokens),
		Within("max_completion_tokens", r.MaxCompletionTokens, 1, LimitOutputTokens),
		Within("n", r.N, 1, LimitChoices),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckLimits refuses an embeddings request with too many inputs or
// dimensions out of bounds.
func (r *EmbeddingRequest) CheckLimits() error {
	if n := r.inputCount(); n > LimitEmbeddingInputs {
		return &FieldError{Param: "input", Code: "invalid_value",
			Message: fmt.Sprintf("at most %d inputs, got %d", LimitEmbeddingInputs, n)}
	}
	return Within("dimensions", r.Dimensions, 1, LimitEmbeddingDimensions)
}

// inputCount counts inputs: a string or one token array is one input, an
// array of strings or of token arrays one per element.
func (r *EmbeddingRequest) inputCount() int {
	in := bytes.TrimSpace(r.Input)
	if len(in) == 0 || in[0] != '[' {
		return 1
	}
	var items []json.RawMessage
	if json.Unmarshal(in, &items) != nil || len(items) == 0 {
		return 1
	}
	if first := bytes.TrimSpace(items[0]); len(first) > 0 && first[0] != '"' && first[0] != '[' {
		return 1 // a token array
	}
	return len(items)
}

// CheckLimits refuses an image request asking for too many images.
func (r *ImageRequest) CheckLimits() error {
	return Within("n", r.N, 1, LimitImages)
}
