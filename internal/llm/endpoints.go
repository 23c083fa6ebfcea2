package llm

import (
	"encoding/json"
	"unicode/utf8"
)

// CompletionRequest is OpenAI's legacy completions request. Prompt is kept
// as sent (a string, strings, or token arrays); members tidegate does not
// read pass through in Extra.
type CompletionRequest struct {
	Model     string          `json:"model"`
	Prompt    json.RawMessage `json:"prompt"`
	MaxTokens *int            `json:"max_tokens,omitempty"`
	N         *int            `json:"n,omitempty"`
	BestOf    *int            `json:"best_of,omitempty"`
	Stream    bool            `json:"stream,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

type completionRequestAlias CompletionRequest

var completionRequestFields = FieldsOf(completionRequestAlias{})

func (r *CompletionRequest) UnmarshalJSON(data []byte) error {
	var a completionRequestAlias
	extra, err := decodeWithExtra(data, &a, completionRequestFields)
	if err != nil {
		return err
	}
	*r = CompletionRequest(a)
	r.Extra = extra
	return nil
}

func (r CompletionRequest) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(completionRequestAlias(r), r.Extra)
}

// CheckLimits refuses a completions request whose numbers are past
// tidegate's bounds (they size the budget reservation).
func (r *CompletionRequest) CheckLimits() error {
	for _, err := range []error{
		Within("max_tokens", r.MaxTokens, 0, LimitOutputTokens),
		Within("n", r.N, 1, LimitChoices),
		Within("best_of", r.BestOf, 1, LimitChoices),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Generated is how many completions the upstream generates (and bills):
// best_of when larger than n.
func (r *CompletionRequest) Generated() int {
	n := 1
	if r.N != nil && *r.N > 0 {
		n = *r.N
	}
	if r.BestOf != nil && *r.BestOf > n {
		n = *r.BestOf
	}
	return n
}

// CompletionResponse is OpenAI's legacy completions answer. Raw, when set,
// is the upstream's own bytes, relayed as they came.
type CompletionResponse struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	Choices           []CompletionChoice `json:"choices"`
	SystemFingerprint string             `json:"system_fingerprint,omitempty"`
	Usage             *Usage             `json:"usage,omitempty"`

	Raw json.RawMessage `json:"-"`
}

// CompletionChoice is one completion; Logprobs is null unless asked for
// (the spec requires the member).
type CompletionChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

// ModerationRequest is OpenAI's moderations request; Input is a string,
// strings, or multimodal parts, kept as sent. Model is optional there.
type ModerationRequest struct {
	Model string          `json:"model,omitempty"`
	Input json.RawMessage `json:"input"`
}

// DefaultModerationModel is what OpenAI uses when a request names none.
const DefaultModerationModel = "omni-moderation-latest"

// ModerationResponse is OpenAI's moderations answer; each result is kept as
// the upstream sent it.
type ModerationResponse struct {
	ID      string            `json:"id"`
	Model   string            `json:"model"`
	Results []json.RawMessage `json:"results"`
}

// SpeechRequest is OpenAI's text-to-speech request; members tidegate does
// not read pass through in Extra.
type SpeechRequest struct {
	Model          string          `json:"model"`
	Input          string          `json:"input"`
	Voice          json.RawMessage `json:"voice"`
	ResponseFormat string          `json:"response_format,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

type speechRequestAlias SpeechRequest

var speechRequestFields = FieldsOf(speechRequestAlias{})

func (r *SpeechRequest) UnmarshalJSON(data []byte) error {
	var a speechRequestAlias
	extra, err := decodeWithExtra(data, &a, speechRequestFields)
	if err != nil {
		return err
	}
	*r = SpeechRequest(a)
	r.Extra = extra
	return nil
}

func (r SpeechRequest) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(speechRequestAlias(r), r.Extra)
}

// Characters is what speech is billed by: the input's characters.
func (r *SpeechRequest) Characters() int { return utf8.RuneCountInString(r.Input) }
