package llm

import "encoding/json"

// Usage is OpenAI's usage shape, the normal form every dialect maps to.
// Prompt tokens include cached ones (read or written); Raw keeps the
// provider's own usage object for billing splits the normal form loses.
type Usage struct {
	PromptTokens            int                      `json:"prompt_tokens"`
	CompletionTokens        int                      `json:"completion_tokens"`
	TotalTokens             int                      `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`

	Raw json.RawMessage `json:"-"`
}

type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
	// CacheWriteTokens is tidegate's own: tokens written to a provider's prompt cache.
	CacheWriteTokens int `json:"cache_write_tokens,omitempty"`
}

type CompletionTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

// CachedTokens is the count of prompt tokens read from cache.
func (u *Usage) CachedTokens() int {
	if u == nil || u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

// ReasoningTokens is the count of completion tokens spent thinking.
func (u *Usage) ReasoningTokens() int {
	if u == nil || u.CompletionTokensDetails == nil {
		return 0
	}
	return u.CompletionTokensDetails.ReasoningTokens
}

// EmbeddingRequest is OpenAI's embeddings request; Input is a string, a list of
// strings, or token arrays, kept as sent.
type EmbeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format,omitempty"`
	Dimensions     *int            `json:"dimensions,omitempty"`
	User           string          `json:"user,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

type embeddingRequestAlias EmbeddingRequest

func (r *EmbeddingRequest) UnmarshalJSON(data []byte) error {
	var a embeddingRequestAlias
	extra, err := decodeWithExtra(data, &a, embeddingRequestFields)
	if err != nil {
		return err
	}
	*r = EmbeddingRequest(a)
	r.Extra = extra
	return nil
}

func (r EmbeddingRequest) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(embeddingRequestAlias(r), r.Extra)
}

// Inputs returns the input as a list of texts; ok is false for token-array input.
func (r *EmbeddingRequest) Inputs() (texts []string, ok bool) {
	var one string
	if json.Unmarshal(r.Input, &one) == nil {
		return []string{one}, true
	}
	if json.Unmarshal(r.Input, &texts) == nil {
		return texts, true
	}
	return nil, false
}

type EmbeddingResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  *Usage      `json:"usage,omitempty"`
}

// Embedding holds a vector: a float array, or a base64 string when asked for.
type Embedding struct {
	Object    string          `json:"object"`
	Index     int             `json:"index"`
	Embedding json.RawMessage `json:"embedding"`
}

// ImageRequest is OpenAI's image generation request.
type ImageRequest struct {
	Model          string `json:"model"`
	Prompt         string `json:"prompt"`
	N              *int   `json:"n,omitempty"`
	Size           string `json:"size,omitempty"`
	ResponseFormat string `json:"response_format,omitempty"`
	Quality        string `json:"quality,omitempty"`
	User           string `json:"user,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

type imageRequestAlias ImageRequest

func (r *ImageRequest) UnmarshalJSON(data []byte) error {
	var a imageRequestAlias
	extra, err := decodeWithExtra(data, &a, imageRequestFields)
	if err != nil {
		return err
	}
	*r = ImageRequest(a)
	r.Extra = extra
	return nil
}

func (r ImageRequest) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(imageRequestAlias(r), r.Extra)
}

// ImageResponse is OpenAI's image answer. Members tidegate does not read are
// kept in Extra and relayed as they came.
type ImageResponse struct {
	Created      int64       `json:"created"`
	Data         []ImageData `json:"data"`
	Background   string      `json:"background,omitempty"`
	OutputFormat string      `json:"output_format,omitempty"`
	Quality      string      `json:"quality,omitempty"`
	Size         string      `json:"size,omitempty"`
	Usage        *ImageUsage `json:"usage,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

type imageResponseAlias ImageResponse

func (r *ImageResponse) UnmarshalJSON(data []byte) error {
	var a imageResponseAlias
	extra, err := decodeWithExtra(data, &a, imageResponseFields)
	if err != nil {
		return err
	}
	*r = ImageResponse(a)
	r.Extra = extra
	return nil
}

func (r ImageResponse) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(imageResponseAlias(r), r.Extra)
}

// ImageUsage is the token usage of OpenAI's GPT image models, not chat's shape.
type ImageUsage struct {
	TotalTokens         int                 `json:"total_tokens"`
	InputTokens         int                 `json:"input_tokens"`
	OutputTokens        int                 `json:"output_tokens"`
	InputTokensDetails  ImageTokensDetails  `json:"input_tokens_details"`
	OutputTokensDetails *ImageTokensDetails `json:"output_tokens_details,omitempty"`
}

// ImageTokensDetails splits image-model tokens into text and image ones.
type ImageTokensDetails struct {
	TextTokens  int `json:"text_tokens"`
	ImageTokens int `json:"image_tokens"`
}

type ImageData struct {
	URL           string `json:"url,omitempty"`
	B64JSON       string `json:"b64_json,omitempty"`
	RevisedPrompt string `json:"revised_prompt,omitempty"`
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// ErrorBody is OpenAI's error envelope.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Code    *string `json:"code"`
	Param   *string `json:"param"`
}
