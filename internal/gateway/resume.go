package gateway

import (
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// resumer continues a text stream that broke after its commit point on the
// next target: the request goes again with the text already sent as a
// trailing assistant message marked prefix, and the new target's output is
// relayed from where the old one stopped. Only for text (no tools, one
// choice), and only toward targets that honour a prefix (DeepSeek prefix
// completion, Anthropic prefill, the sim): a route opts in with resume.
// The continuation is admitted by the request's own run, like any attempt.
type resumer struct {
	run     *run
	req     *llm.ChatRequest
	text    strings.Builder // choice 0's content so far
	resumed int
	// dropRole drops the new stream's opening role chunk.
	dropRole bool
}

// observe tracks the text sent and shapes the chunks after a resume: the
// continuation's role chunk is dropped, its finish chunk marked.
func (r *resumer) observe(c *llm.ChatChunk) (*llm.ChatChunk, bool) {
	for _, ch := range c.Choices {
		d := ch.Delta
		if r.dropRole && d.Role != "" && (d.Content == nil || *d.Content == "") && len(d.ToolCalls) == 0 && ch.FinishReason == nil {
			r.dropRole = false
			return c, true
		}
		if ch.Index == 0 && d.Content != nil {
			r.text.WriteString(*d.Content)
		}
		if r.resumed > 0 && ch.FinishReason != nil {
			cp := *c
			cp.Raw, cp.Resumed = nil, r.resumed
			return &cp, false
		}
	}
	return c, false
}

// try bills the broken attempt and opens the continuation; false when the
// stream must end with its error instead.
func (r *resumer) try(s *Stream) bool {
	broke := s.Err()
	run := r.run
	if broke == nil || run.ctx.Err() != nil || r.text.Len() == 0 || !provider.AsError(broke).Kind.Retryable() {
		return false
	}
	g := run.g
	broken := s.attempt
	s.timing.Tokens(int(s.promptEstimate), int(EstimateTokens(s.chars)))
	g.healthDone(router.Pass{Target: broken.Target}, broke) // admitted long ago: it counts, never extends an ejection
	// The broken attempt is billed for what it generated, estimated.
	s.tab.Record(Attempt{Target: broken.Target, Number: broken.Number, Status: "error", Estimated: true,
		Usage: llm.Usage{PromptTokens: int(s.promptEstimate), CompletionTokens: int(EstimateTokens(s.chars))}})
	s.chars = 0
	cont := *r.req
	cont.Messages = append(append([]llm.Message(nil), r.req.Messages...),
		llm.Message{Role: "assistant", Content: llm.TextContent(r.text.String()), Prefix: true})
	for {
		tk, ok := run.admit()
		if !ok {
			return false
		}
		next, err := g.openStream(run.ctx, tk.p, tk.t, &cont)
		run.done(tk, err)
		if err != nil {
			tk.release()
			if !run.failed(tk.t, err) {
				return false
			}
			continue
		}
		s.inner.Close()
		if s.cancel != nil {
			s.cancel()
		}
		s.endAttempt(broke)
		if s.slot != nil {
			s.slot() // the broken target's slot goes back; the new one's is held
		}
		s.slot = tk.release
		s.inner, s.cancel, s.held, s.pending = next.inner, next.cancel, next.held, true
		s.timing, s.endAttempt = next.timing, next.endAttempt
		s.silent.Store(false) // the stall was the old target's
		s.attempt = Attempt{Target: tk.t, Number: tk.number}
		s.usage = nil
		r.resumed++
		r.dropRole = true
		return true
	}
}
