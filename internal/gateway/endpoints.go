package gateway

import (
	"context"
	"io"
	"math"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

// The endpoints besides chat bill in the ledger's token columns, each in
// its own unit, so the catalog prices them per 1M of it: completions and
// moderations by tokens, speech by input characters, transcription and
// translation by seconds of audio (or by tokens, for models that report
// them). A catalog row for an audio model says which unit it prices.

// oneShot runs a request that answers in one piece through the attempt
// path: plan, budget hold, failover, slots, health. bill turns the answer
// into the attempt's usage. The bill settles on Outcome.Settle.
func oneShot[T any](g *Gateway, ctx context.Context, call *Call, model string, est func(plan []router.Target) Estimate,
	attempt func(ctx context.Context, p provider.Provider, t router.Target) (T, error), bill func(T) Attempt) (T, Outcome, error) {
	var zero T
	plan, err := g.Router.Plan(&router.Request{Model: model})
	if err != nil {
		return zero, Outcome{}, err
	}
	tab, err := g.open(ctx, call, est(plan.Targets))
	if err != nil {
		return zero, Outcome{}, err
	}
	timing.From(ctx).Routed()
	started := time.Now()
	r := g.newRun(ctx, plan)
	v, err := try(r, func(p provider.Provider, t router.Target) (T, error) {
		actx, _, end := g.startAttempt(ctx, t)
		v, err := attempt(actx, p, t)
		end(err)
		return v, err
	})
	out := r.outcome()
	if err != nil {
		tab.Close()
		return zero, out, err
	}
	a := bill(v)
	a.Target, a.Number, a.Status, a.Latency = out.Route, out.Attempts, "ok", time.Since(started)
	tab.Record(a)
	out.settle = tab.Close
	return v, out, nil
}

// tokensFor bounds a count of bytes or units for an estimate.
func tokensFor(n int64) int64 { return min(max(n, 0), estimateCeiling) }

// Completions answers a legacy text completion, billed by tokens.
func (g *Gateway) Completions(ctx context.Context, call *Call, req *llm.CompletionRequest) (*llm.CompletionResponse, Outcome, error) {
	prompt := tokensFor(int64(len(req.Prompt)+2) / 3)
	est := func(plan []router.Target) Estimate {
		out := g.outputCap()
		if req.MaxTokens != nil && *req.MaxTokens > 0 {
			out = int64(*req.MaxTokens)
		}
		n := int64(req.Generated()) // both bounded at the door (CheckLimits)
		return Estimate{Plan: plan, PromptTokens: prompt, OutputTokens: tokensFor(out * n)}
	}
	return oneShot(g, ctx, call, req.Model, est,
		func(ctx context.Context, p provider.Provider, t router.Target) (*llm.CompletionResponse, error) {
			c, ok := p.(provider.Completer)
			if !ok {
				return nil, unsupported(t, "text completions")
			}
			r := *req
			r.Model = t.Model
			return c.Completion(ctx, &r)
		},
		func(resp *llm.CompletionResponse) Attempt {
			if resp.Usage != nil {
				return Attempt{Usage: *resp.Usage}
			}
			chars := 0
			for _, c := range resp.Choices {
				chars += len(c.Text)
			}
			return Attempt{Usage: llm.Usage{PromptTokens: int(prompt), CompletionTokens: int(EstimateTokens(chars))}, Estimated: true}
		})
}

// Moderations classifies input. Upstreams report no usage: the input's
// tokens are estimated, and cost what the catalog says (OpenAI's
// moderation models are free).
func (g *Gateway) Moderations(ctx context.Context, call *Call, req *llm.ModerationRequest) (*llm.ModerationResponse, Outcome, error) {
	prompt := tokensFor(int64(len(req.Input)+2) / 3)
	return oneShot(g, ctx, call, req.Model,
		func(plan []router.Target) Estimate { return Estimate{Plan: plan, PromptTokens: prompt} },
		func(ctx context.Context, p provider.Provider, t router.Target) (*llm.ModerationResponse, error) {
			m, ok := p.(provider.Moderator)
			if !ok {
				return nil, unsupported(t, "moderations")
			}
			r := *req
			r.Model = t.Model
			return m.Moderation(ctx, &r)
		},
		func(*llm.ModerationResponse) Attempt {
			return Attempt{Usage: llm.Usage{PromptTokens: int(EstimateTokens(len(req.Input)))}, Estimated: true}
		})
}

// Audio byte rates that bound an upload's duration: the least any speech
// codec in use needs (the budget hold, at worst), and a common MP3's (the
// bill when the upstream reports no duration).
const (
	leastAudioBytesPerSecond   = 1000  // 8 kbit/s
	typicalAudioBytesPerSecond = 16000 // 128 kbit/s
)

// Transcription transcribes or translates an uploaded audio file, billed
// per second of audio (or by tokens, for models that report them).
func (g *Gateway) Transcription(ctx context.Context, call *Call, task provider.AudioTask, up *provider.Upload) (*provider.Transcript, Outcome, error) {
	size := up.FileBytes()
	return oneShot(g, ctx, call, up.Value("model"),
		func(plan []router.Target) Estimate {
			return Estimate{Plan: plan, PromptTokens: tokensFor(size/leastAudioBytesPerSecond + 1)}
		},
		func(ctx context.Context, p provider.Provider, t router.Target) (*provider.Transcript, error) {
			tr, ok := p.(provider.AudioTranscriber)
			if !ok {
				return nil, unsupported(t, "audio "+string(task))
			}
			return tr.Transcription(ctx, task, up.With("model", t.Model))
		},
		func(tr *provider.Transcript) Attempt {
			switch {
			case tr.Usage != nil:
				return Attempt{Usage: *tr.Usage}
			case tr.Seconds > 0 && tr.Seconds < estimateCeiling:
				return Attempt{Usage: llm.Usage{PromptTokens: int(math.Ceil(tr.Seconds))}}
			}
			return Attempt{Usage: llm.Usage{PromptTokens: int(size/typicalAudioBytesPerSecond + 1)}, Estimated: true}
		})
}

// SpeechAudio is synthesized speech, read as the upstream sends it. Close
// gives back the target's slot; the bill settles on Outcome.Settle.
type SpeechAudio struct {
	ContentType string
	body        io.ReadCloser
	release     func()
	once        sync.Once
}

func (s *SpeechAudio) Read(p []byte) (int, error) { return s.body.Read(p) }

// Close ends the upstream's answer and frees its target.
func (s *SpeechAudio) Close() error {
	err := s.body.Close()
	s.once.Do(func() {
		if s.release != nil {
			s.release()
		}
	})
	return err
}

func (s *SpeechAudio) holdSlot(release func()) { s.release = release }

// Speech synthesizes audio, billed per input character. Failover ends when
// the upstream's answer starts; the audio is then relayed as it comes.
func (g *Gateway) Speech(ctx context.Context, call *Call, req *llm.SpeechRequest) (*SpeechAudio, Outcome, error) {
	chars := int64(req.Characters())
	return oneShot(g, ctx, call, req.Model,
		func(plan []router.Target) Estimate { return Estimate{Plan: plan, PromptTokens: tokensFor(chars)} },
		func(ctx context.Context, p provider.Provider, t router.Target) (*SpeechAudio, error) {
			s, ok := p.(provider.SpeechSynthesizer)
			if !ok {
				return nil, unsupported(t, "speech")
			}
			r := *req
			r.Model = t.Model
			a, err := s.Speech(ctx, &r)
			if err != nil {
				return nil, err
			}
			return &SpeechAudio{ContentType: a.ContentType, body: a.Body}, nil
		},
		func(*SpeechAudio) Attempt { return Attempt{Usage: llm.Usage{PromptTokens: int(chars)}} })
}

// ImageEdit edits uploaded images, priced per image like generation.
func (g *Gateway) ImageEdit(ctx context.Context, call *Call, up *provider.Upload, asked Images) (*llm.ImageResponse, Outcome, error) {
	return oneShot(g, ctx, call, up.Value("model"),
		func(plan []router.Target) Estimate { return Estimate{Plan: plan, Images: asked} },
		func(ctx context.Context, p provider.Provider, t router.Target) (*llm.ImageResponse, error) {
			e, ok := p.(provider.ImageEditor)
			if !ok {
				return nil, unsupported(t, "image edits")
			}
			return e.ImageEdit(ctx, up.With("model", t.Model))
		},
		func(resp *llm.ImageResponse) Attempt {
			delivered := asked
			delivered.N = int64(len(resp.Data))
			a := Attempt{Images: delivered}
			if u := resp.Usage; u != nil {
				a.Usage = llm.Usage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, TotalTokens: u.TotalTokens}
			}
			return a
		})
}
