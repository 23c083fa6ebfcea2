package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// Completion answers a legacy completion as the model would a chat turn
// holding the prompt: the same text, latency and faults.
func (f *Fleet) Completion(ctx context.Context, req *llm.CompletionRequest) (*llm.CompletionResponse, error) {
	prompt, err := promptText(req.Prompt)
	if err != nil {
		return nil, err
	}
	chat := &llm.ChatRequest{Model: req.Model, MaxTokens: req.MaxTokens, N: req.N,
		Messages: []llm.Message{{Role: "user", Content: llm.TextContent(prompt)}}}
	resp, err := f.ChatCompletion(ctx, chat)
	if err != nil {
		return nil, err
	}
	out := &llm.CompletionResponse{ID: strings.Replace(resp.ID, "chatcmpl", "cmpl", 1), Object: "text_completion",
		Created: resp.Created, Model: resp.Model, SystemFingerprint: resp.SystemFingerprint, Usage: resp.Usage}
	for _, c := range resp.Choices {
		out.Choices = append(out.Choices, llm.CompletionChoice{Index: c.Index, Text: c.Message.Content.String(), FinishReason: c.FinishReason})
	}
	return out, nil
}

// promptText reads a completions prompt: a string, strings (joined), or
// token ids (read as their digits).
func promptText(raw json.RawMessage) (string, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return strings.Join(many, "\n"), nil
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil {
		return fmt.Sprint(ids), nil
	}
	var idLists [][]int
	if json.Unmarshal(raw, &idLists) == nil {
		return fmt.Sprint(idLists), nil
	}
	return "", provider.Errorf(provider.KindInvalidRequest, "invalid_prompt",
		"prompt must be a string, an array of strings, an array of token ids or an array of such arrays")
}

// FlagWord is the word the sim's moderation flags (as violence), so a demo
// can show both answers.
const FlagWord = "attack"

// moderationCategories are the categories OpenAI's moderation answers carry.
var moderationCategories = []string{"hate", "hate/threatening", "harassment", "harassment/threatening",
	"illicit", "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
	"sexual", "sexual/minors", "violence", "violence/graphic"}

// Moderation flags each text input that holds FlagWord.
func (f *Fleet) Moderation(ctx context.Context, req *llm.ModerationRequest) (*llm.ModerationResponse, error) {
	if _, err := f.model(req.Model); err != nil {
		return nil, err
	}
	texts, err := moderationTexts(req.Input)
	if err != nil {
		return nil, err
	}
	out := &llm.ModerationResponse{ID: fmt.Sprintf("modr-sim-%d", f.serial.Add(1)), Model: req.Model}
	for _, t := range texts {
		flagged := strings.Contains(strings.ToLower(t), FlagWord)
		cats, scores, applied := map[string]bool{}, map[string]float64{}, map[string][]string{}
		for _, c := range moderationCategories {
			cats[c], scores[c], applied[c] = false, 0.0001, []string{"text"}
		}
		if flagged {
			cats["violence"], scores["violence"] = true, 0.97
		}
		r, _ := json.Marshal(map[string]any{"flagged": flagged, "categories": cats, "category_scores": scores,
			"category_applied_input_types": applied})
		out.Results = append(out.Results, r)
	}
	return out, nil
}

// moderationTexts reads a moderation input: a string, strings, or parts
// (the text of text parts; an image part is moderated as no text).
func moderationTexts(raw json.RawMessage) ([]string, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		return many, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil && len(parts) > 0 {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		return []string{b.String()}, nil
	}
	return nil, provider.Errorf(provider.KindInvalidRequest, "invalid_input", "input must be a string, an array of strings or an array of parts")
}

// simAudioRate is the byte rate the sim assumes of an upload (16 kHz,
// 16-bit mono PCM) to tell its duration.
const simAudioRate = 32000

// Transcription answers a fixed text naming the upload, with a duration
// read from its size, in the response_format asked for.
func (f *Fleet) Transcription(ctx context.Context, task provider.AudioTask, up *provider.Upload) (*provider.Transcript, error) {
	if _, err := f.model(up.Value("model")); err != nil {
		return nil, err
	}
	var size int64
	for _, file := range up.Files {
		size += file.Size
	}
	if len(up.Files) == 0 {
		return nil, &provider.Error{Kind: provider.KindInvalidRequest, Code: "missing_file", Param: "file", Message: "file is required"}
	}
	seconds := max(float64(size)/simAudioRate, 0.1)
	text := fmt.Sprintf("%s %s of %d bytes of audio", Marker, strings.TrimSuffix(string(task), "s"), size)
	out := &provider.Transcript{Seconds: seconds}
	switch up.Value("response_format") {
	case "text":
		out.ContentType, out.Body = "text/plain; charset=utf-8", []byte(text+"\n")
	case "srt":
		out.ContentType, out.Body = "text/plain; charset=utf-8", fmt.Appendf(nil, "1\n00:00:00,000 --> %s\n%s\n\n", srtTime(seconds), text)
	case "vtt":
		out.ContentType, out.Body = "text/vtt; charset=utf-8", fmt.Appendf(nil, "WEBVTT\n\n00:00:00.000 --> %s\n%s\n\n", strings.Replace(srtTime(seconds), ",", ".", 1), text)
	case "verbose_json":
		out.ContentType = "application/json"
		out.Body, _ = json.Marshal(map[string]any{"task": strings.TrimSuffix(string(task), "s"), "language": "english",
			"duration": seconds, "text": text})
	default:
		out.ContentType = "application/json"
		body := map[string]any{"text": text}
		if task == provider.Transcribe {
			body["usage"] = map[string]any{"type": "duration", "seconds": int(seconds + 0.999)}
		}
		out.Body, _ = json.Marshal(body)
	}
	return out, nil
}

func srtTime(seconds float64) string {
	ms := int64(seconds * 1000)
	return fmt.Sprintf("%02d:%02d:%02d,%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// speechRate is the sim's speech: samples per second of 8-bit mono PCM, and
// seconds spoken per character.
const (
	speechRate    = 8000
	speechPerChar = 0.05
)

// Speech answers a WAV file (whatever format was asked: the sim has one
// encoder) of a tone lasting 50 ms a character, produced as it is read.
func (f *Fleet) Speech(ctx context.Context, req *llm.SpeechRequest) (*provider.Audio, error) {
	if _, err := f.model(req.Model); err != nil {
		return nil, err
	}
	samples := int64(float64(req.Characters())*speechPerChar*speechRate) + 1
	return &provider.Audio{ContentType: "audio/wav", Body: io.NopCloser(io.MultiReader(
		bytes.NewReader(wavHeader(samples)), io.LimitReader(&tone{}, samples)))}, nil
}

// wavHeader is the 44-byte RIFF header of samples of 8-bit mono PCM.
func wavHeader(samples int64) []byte {
	h := make([]byte, 0, 44)
	le32 := func(v uint32) { h = binary.LittleEndian.AppendUint32(h, v) }
	le16 := func(v uint16) { h = binary.LittleEndian.AppendUint16(h, v) }
	h = append(h, "RIFF"...)
	le32(uint32(36 + samples))
	h = append(h, "WAVEfmt "...)
	le32(16)
	le16(1) // PCM
	le16(1) // mono
	le32(speechRate)
	le32(speechRate) // bytes per second
	le16(1)          // block align
	le16(8)          // bits per sample
	h = append(h, "data"...)
	le32(uint32(samples))
	return h
}

// tone is an endless square wave of 8-bit samples.
type tone struct{ n int }

func (t *tone) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 128 + 40
		if (t.n/10)%2 == 1 {
			p[i] = 128 - 40
		}
		t.n++
	}
	return len(p), nil
}

// ImageEdit answers tiny PNGs tinted by the prompt and the images given.
func (f *Fleet) ImageEdit(ctx context.Context, up *provider.Upload) (*llm.ImageResponse, error) {
	if _, err := f.model(up.Value("model")); err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, file := range up.Files {
		if _, err := io.Copy(h, io.NewSectionReader(file.Content, file.Offset, file.Size)); err != nil {
			return nil, &provider.Error{Kind: provider.KindInternal, Message: "cannot read the upload", Err: err}
		}
	}
	prompt := up.Value("prompt") + fmt.Sprintf("/%x", h.Sum(nil))
	n := 1
	if v, err := strconv.Atoi(up.Value("n")); err == nil && v > 0 {
		n = min(v, llm.LimitImages)
	}
	resp := &llm.ImageResponse{Created: f.now().Unix()}
	for i := 0; i < n; i++ {
		img := base64.StdEncoding.EncodeToString(tinyPNG(prompt, i))
		d := llm.ImageData{B64JSON: img}
		if up.Value("response_format") == "url" {
			d.B64JSON, d.URL = "", "data:image/png;base64,"+img
		}
		resp.Data = append(resp.Data, d)
	}
	return resp, nil
}
