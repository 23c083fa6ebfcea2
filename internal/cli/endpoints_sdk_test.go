package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// endpointsGateway serves the demo's sim fleet, whose models for the other
// endpoints carry demo prices, under the demo's route names.
func endpointsGateway(t *testing.T) *gatewayProc {
	return startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
providers:
  - {name: sim, type: sim}
models:
  - {name: instruct, targets: [sim/instruct]}
  - {name: omni-moderation-latest, targets: [sim/moderation]}
  - {name: transcribe, targets: [sim/whisper]}
  - {name: speech, targets: [sim/tts]}
  - {name: image-edit, targets: [sim/image]}
`, testKey))
}

// TestOpenAISDKOtherEndpoints drives the official Go SDK through every
// endpoint besides chat, with a key under a hard budget: each is priced
// (a hard budget refuses an unpriced model) and billed.
func TestOpenAISDKOtherEndpoints(t *testing.T) {
	g := endpointsGateway(t)
	_, key := createKey(t, g, `{"name":"sdk","project":"demo","budget":{"amount":1.00,"currency":"USD","period":"total"}}`)
	client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model: "instruct", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens: openai.Int(8),
	})
	if err != nil {
		t.Fatalf("completions: %v", err)
	}
	if len(comp.Choices) != 1 || !strings.HasPrefix(comp.Choices[0].Text, sim.Marker) || comp.Usage.CompletionTokens == 0 {
		t.Errorf("completion %+v", comp)
	}

	mod, err := client.Moderations.New(ctx, openai.ModerationNewParams{ // no model: OpenAI's default, a route here
		Input: openai.ModerationNewParamsInputUnion{OfStringArray: []string{"good morning", "the attack is at dawn"}},
	})
	if err != nil {
		t.Fatalf("moderations: %v", err)
	}
	if len(mod.Results) != 2 || mod.Results[0].Flagged || !mod.Results[1].Flagged || !mod.Results[1].Categories.Violence {
		t.Errorf("moderation %+v", mod.Results)
	}

	audio := strings.Repeat("\x00\x01", 48000) // 3 s at the sim's assumed 32 kB/s
	tr, err := client.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
		Model: "transcribe", File: openai.File(strings.NewReader(audio), "talk.wav", "audio/wav"),
	})
	if err != nil {
		t.Fatalf("transcriptions: %v", err)
	}
	if want := sim.Marker + " transcription of 96000 bytes of audio"; tr.Text != want || tr.Usage.Seconds != 3 {
		t.Errorf("transcription %q (usage %+v), want %q and 3 s", tr.Text, tr.Usage, want)
	}

	tl, err := client.Audio.Translations.New(ctx, openai.AudioTranslationNewParams{
		Model: "transcribe", File: openai.File(strings.NewReader(audio), "talk.wav", "audio/wav"),
	})
	if err != nil {
		t.Fatalf("translations: %v", err)
	}
	if !strings.HasPrefix(tl.Text, sim.Marker+" translation") {
		t.Errorf("translation %q", tl.Text)
	}

	sp, err := client.Audio.Speech.New(ctx, openai.AudioSpeechNewParams{Model: "speech", Input: "hello world", Voice: openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")}})
	if err != nil {
		t.Fatalf("speech: %v", err)
	}
	wav, err := io.ReadAll(sp.Body)
	sp.Body.Close()
	if err != nil || len(wav) < 44 || string(wav[:4]) != "RIFF" || sp.Header.Get("Content-Type") != "audio/wav" {
		t.Errorf("speech: %d bytes (%v), type %q", len(wav), err, sp.Header.Get("Content-Type"))
	}

	img, err := client.Images.Edit(ctx, openai.ImageEditParams{
		Model: "image-edit", Prompt: "add a hat",
		Image: openai.ImageEditParamsImageUnion{OfFile: openai.File(strings.NewReader("not really a png"), "in.png", "image/png")},
	})
	if err != nil {
		t.Fatalf("image edit: %v", err)
	}
	if len(img.Data) != 1 || img.Data[0].B64JSON == "" {
		t.Errorf("image edit %+v", img.Data)
	}
}

// TestOtherEndpointsBudgeted: speech is held per character against a hard
// budget, and refused when its worst case does not fit.
func TestOtherEndpointsBudgeted(t *testing.T) {
	g := endpointsGateway(t)
	// 1,000 characters at the demo's $15 per 1M cost $0.015: over $0.01.
	_, key := createKey(t, g, `{"name":"tight","project":"demo","budget":{"amount":0.01,"currency":"USD","period":"total"}}`)
	client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.Audio.Speech.New(ctx, openai.AudioSpeechNewParams{Model: "speech", Input: strings.Repeat("a", 1000),
		Voice: openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Code != "budget_exceeded" {
		t.Fatalf("got %v, want 429 budget_exceeded", err)
	}
	sp, err := client.Audio.Speech.New(ctx, openai.AudioSpeechNewParams{Model: "speech", Input: strings.Repeat("a", 100),
		Voice: openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")}})
	if err != nil {
		t.Fatalf("a request that fits: %v", err)
	}
	_, _ = io.Copy(io.Discard, sp.Body)
	sp.Body.Close()
}
