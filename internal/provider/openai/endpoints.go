package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// lacks is the error for an endpoint the client's preset does not serve.
func (c *Client) lacks(what string) error {
	return provider.Errorf(provider.KindUnsupported, "unsupported", "provider %s does not offer %s", c.Name, what)
}

func encodeFailed(err error) error {
	return &provider.Error{Kind: provider.KindInvalidRequest, Message: "cannot encode request", Err: err}
}

func (c *Client) Completion(ctx context.Context, req *llm.CompletionRequest) (_ *llm.CompletionResponse, err error) {
	defer provider.Guard(&err, c.APIKey)
	if !c.Preset.Completions {
		return nil, c.lacks("text completions")
	}
	r := *req
	r.Stream = false
	body, err := json.Marshal(r)
	if err != nil {
		return nil, encodeFailed(err)
	}
	var wire struct {
		llm.CompletionResponse
		RawUsage json.RawMessage `json:"usage"`
	}
	b, err := c.callRaw(ctx, "/completions", body, &wire)
	if err != nil {
		return nil, err
	}
	out := wire.CompletionResponse
	if out.Choices == nil {
		return nil, provider.BadResponse("upstream %s answered without choices", c.Name)
	}
	out.Usage = normalizeUsage(wire.RawUsage)
	if out.Object == "text_completion" {
		out.Raw = bytes.TrimSpace(b) // OpenAI's shape: relay the bytes
	}
	return &out, nil
}

func (c *Client) Moderation(ctx context.Context, req *llm.ModerationRequest) (_ *llm.ModerationResponse, err error) {
	defer provider.Guard(&err, c.APIKey)
	if !c.Preset.Moderations {
		return nil, c.lacks("moderations")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, encodeFailed(err)
	}
	var out llm.ModerationResponse
	if err := c.callJSON(ctx, "/moderations", body, &out); err != nil {
		return nil, err
	}
	if out.Results == nil {
		return nil, provider.BadResponse("upstream %s answered without results", c.Name)
	}
	return &out, nil
}

func (c *Client) Transcription(ctx context.Context, task provider.AudioTask, up *provider.Upload) (_ *provider.Transcript, err error) {
	defer provider.Guard(&err, c.APIKey)
	if !c.Preset.Transcriptions {
		return nil, c.lacks("audio " + string(task))
	}
	b, contentType, err := c.upload(ctx, "/audio/"+string(task), up)
	if err != nil {
		return nil, err
	}
	out := &provider.Transcript{ContentType: contentType, Body: b}
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/json" {
		out.Seconds, out.Usage = transcriptUsage(b)
	}
	return out, nil
}

// transcriptUsage reads what a JSON transcript is billed by: usage of type
// duration (seconds) or tokens, else verbose_json's duration.
func transcriptUsage(b []byte) (seconds float64, usage *llm.Usage) {
	var wire struct {
		Duration *float64 `json:"duration"`
		Usage    *struct {
			Type         string  `json:"type"`
			Seconds      float64 `json:"seconds"`
			InputTokens  int     `json:"input_tokens"`
			OutputTokens int     `json:"output_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(b, &wire) != nil {
		return 0, nil
	}
	switch u := wire.Usage; {
	case u != nil && u.Type == "tokens":
		return 0, &llm.Usage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, TotalTokens: u.InputTokens + u.OutputTokens}
	case u != nil && u.Type == "duration":
		return u.Seconds, nil
	case wire.Duration != nil:
		return *wire.Duration, nil
	}
	return 0, nil
}

func (c *Client) Speech(ctx context.Context, req *llm.SpeechRequest) (_ *provider.Audio, err error) {
	defer provider.Guard(&err, c.APIKey)
	if !c.Preset.Speech {
		return nil, c.lacks("speech")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, encodeFailed(err)
	}
	resp, err := c.post(ctx, "/audio/speech", body)
	if err != nil {
		return nil, err
	}
	// Audio never comes as JSON: that is an error in a 2xx body.
	if err := c.jsonInstead(resp, "a speech request"); err != nil {
		return nil, err
	}
	return &provider.Audio{ContentType: resp.Header.Get("Content-Type"), Body: resp.Body}, nil
}

func (c *Client) ImageEdit(ctx context.Context, up *provider.Upload) (_ *llm.ImageResponse, err error) {
	defer provider.Guard(&err, c.APIKey)
	if !c.Preset.ImageEdits {
		return nil, c.lacks("image edits")
	}
	b, _, err := c.upload(ctx, "/images/edits", up)
	if err != nil {
		return nil, err
	}
	var out llm.ImageResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, provider.BadResponse("upstream %s sent unreadable JSON", c.Name).Quote(b)
	}
	if out.Data == nil {
		return nil, provider.BadResponse("upstream %s answered without data", c.Name)
	}
	return &out, nil
}

// upload posts a multipart form, streamed from its spool, and reads the answer.
func (c *Client) upload(ctx context.Context, path string, up *provider.Upload) (body []byte, contentType string, err error) {
	ct, length, form, err := up.Body()
	if err != nil {
		return nil, "", encodeFailed(err)
	}
	defer form.Close()
	resp, err := provider.CallBody(ctx, c.HTTP, c.Name, c.url(path), c.header(), ct, form, length, c.fail)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := provider.ReadBody(resp)
	if err != nil {
		return nil, "", err
	}
	if e := c.errorIn(resp, b); e != nil {
		return nil, "", e
	}
	return b, resp.Header.Get("Content-Type"), nil
}
