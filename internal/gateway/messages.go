package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

// MessagesRequest is an Anthropic /v1/messages request as the gateway
// routes it: each target that speaks the Messages API natively
// (provider.MessagesPassthrough) gets the client's body, the others its
// chat translation. The gateway stays dialect-free: the caller builds both.
type MessagesRequest struct {
	Model  string
	Stream bool
	// Native builds the client's body for a native target's own model name.
	Native func(model string) (*provider.NativeRequest, error)
	// Chat is the translation for the other targets; nil when it cannot be
	// made, ChatErr then says why (a 400 unless a native target answers).
	Chat    *llm.ChatRequest
	ChatErr error
	// PromptBytes sizes the prompt; MaxTokens caps the output (thinking included).
	PromptBytes int64
	MaxTokens   int
	Needs       []string
}

// MessagesAnswer is a whole answer: a native target's bytes, or a chat
// answer to translate back.
type MessagesAnswer struct {
	Native *provider.RawAnswer
	Chat   *llm.ChatResponse
}

// MessagesStream is a stream of Anthropic events relayed as they came
// (Native: each chunk's Raw is one event, framed), or of chat chunks to
// translate.
type MessagesStream struct {
	*Stream
	Native bool
}

func (g *Gateway) messagesPlan(req *MessagesRequest) (*router.Plan, error) {
	return g.Router.Plan(&router.Request{Model: req.Model, Stream: req.Stream, PromptBytes: req.PromptBytes, Needs: req.Needs})
}

// startMessages plans a request, takes its route's slot and holds its
// worst case against limits and budgets; release gives the slot back.
func (g *Gateway) startMessages(ctx context.Context, call *Call, req *MessagesRequest) (_ *run, _ Estimate, _ Tab, release func(), _ error) {
	plan, err := g.messagesPlan(req)
	if err != nil {
		return nil, Estimate{}, nil, nil, err
	}
	release, err = takeRoute(plan)
	if err != nil {
		return nil, Estimate{}, nil, nil, err
	}
	est := req.estimate(plan.Targets)
	tab, err := g.open(ctx, call, est)
	if err != nil {
		release()
		return nil, Estimate{}, nil, nil, err
	}
	timing.From(ctx).Routed()
	return g.newRun(ctx, plan), est, tab, release, nil
}

// estimate bounds the request's cost: max_tokens covers the thinking budget.
func (req *MessagesRequest) estimate(plan []router.Target) Estimate {
	return Estimate{Plan: plan, PromptTokens: (min(req.PromptBytes, estimateCeiling) + 2) / 3,
		OutputTokens: int64(max(req.MaxTokens, 0)), Stream: req.Stream}
}

// chatFor is the translation a non-native target gets, or why there is none.
func (req *MessagesRequest) chatFor() (*llm.ChatRequest, error) {
	if req.Chat == nil {
		if req.ChatErr == nil {
			return nil, &provider.Error{Kind: provider.KindUnsupported, Message: "this request has no translation"}
		}
		return nil, req.ChatErr
	}
	return req.Chat, nil
}

// Messages answers a non-streaming /v1/messages request through the plan:
// failover, health, budgets and billing as on chat; a native target's usage
// (cache reads and writes included) is what is billed.
func (g *Gateway) Messages(ctx context.Context, call *Call, req *MessagesRequest) (*MessagesAnswer, Outcome, error) {
	r, est, tab, release, err := g.startMessages(ctx, call, req)
	if err != nil {
		return nil, Outcome{}, err
	}
	defer release()
	var started time.Time
	ans, err := try(r, func(p provider.Provider, t router.Target) (*MessagesAnswer, error) {
		np, native := p.(provider.MessagesPassthrough)
		var chat *llm.ChatRequest
		var nr *provider.NativeRequest
		var err error
		if native {
			nr, err = req.Native(t.Model)
		} else {
			chat, err = req.chatFor()
		}
		if err != nil {
			return nil, err
		}
		started = time.Now()
		actx, ta, end := g.startAttempt(ctx, t)
		a := &MessagesAnswer{}
		var usage *llm.Usage
		if native {
			a.Native, err = np.Messages(actx, nr)
			if err == nil {
				usage = a.Native.Usage
			}
		} else {
			a.Chat, err = p.ChatCompletion(actx, g.forTarget(ctx, chat, t))
			if err == nil {
				usage = a.Chat.Usage
			}
		}
		if err == nil {
			g.Router.Learned.Answers.Observe(t, time.Since(started))
			if usage != nil {
				ta.Tokens(usage.PromptTokens, usage.CompletionTokens)
			}
		}
		end(err)
		return a, err
	})
	out := r.outcome()
	if err != nil {
		tab.Close()
		return nil, out, err
	}
	at := Attempt{Target: out.Route, Number: out.Attempts, Status: "ok", Latency: time.Since(started)}
	switch {
	case ans.Native != nil && ans.Native.Usage != nil:
		at.Usage = *ans.Native.Usage
	case ans.Chat != nil && ans.Chat.Usage != nil:
		at.Usage = *ans.Chat.Usage
	default:
		chars := 0
		if ans.Native != nil {
			chars = len(ans.Native.Output)
		} else {
			for _, c := range ans.Chat.Choices {
				chars += len(c.Message.Content.String()) + len(c.Message.ReasoningContent)
			}
		}
		at.Usage, at.Estimated = llm.Usage{PromptTokens: int(est.PromptTokens), CompletionTokens: int(EstimateTokens(chars))}, true
	}
	tab.Record(at)
	out.settle = tab.Close
	return ans, out, nil
}

// MessagesStream opens a /v1/messages stream and holds it until its first
// content, as ChatStream does: a target that fails before it is replaced
// by the next at no cost to the client. Native events are held and relayed
// whole; a broken or cancelled stream is billed as a chat stream is.
func (g *Gateway) MessagesStream(ctx context.Context, call *Call, req *MessagesRequest) (*MessagesStream, Outcome, error) {
	r, est, tab, releaseRoute, err := g.startMessages(ctx, call, req)
	if err != nil {
		return nil, Outcome{}, err
	}
	var started time.Time
	ms, err := try(r, func(p provider.Provider, t router.Target) (*MessagesStream, error) {
		if np, native := p.(provider.MessagesPassthrough); native {
			started = time.Now()
			s, err := g.openStream(ctx, eventStreamer{np: np, native: req.Native}, t, nativeChat)
			return &MessagesStream{Stream: s, Native: true}, err
		}
		chat, err := req.chatFor()
		if err != nil {
			return nil, err
		}
		started = time.Now()
		s, err := g.openStream(ctx, p, t, chat)
		return &MessagesStream{Stream: s}, err
	})
	out := r.outcome()
	if err != nil {
		tab.Close()
		releaseRoute()
		return nil, out, err
	}
	s := ms.Stream
	s.started, s.attempt = started, Attempt{Target: r.route, Number: r.attempts}
	s.routeSlot = releaseRoute
	s.tab, s.promptEstimate = tab, est.PromptTokens
	return ms, out, nil
}

// nativeChat is what openStream sees of a native stream: its usage is kept
// for billing (and relayed inside the events, which are the client's).
var nativeChat = &llm.ChatRequest{Stream: true, StreamOptions: &llm.StreamOptions{IncludeUsage: true}}

// eventStreamer lets a native stream run through openStream and Stream
// (commit point, first-token and idle timeouts, slots, billing): each
// event becomes a chunk whose Raw is the event, framed for relay. Only
// its ChatCompletionStream is used.
type eventStreamer struct {
	np     provider.MessagesPassthrough
	native func(model string) (*provider.NativeRequest, error)
}

var errNotChat = errors.New("a native Messages target answers only through the passthrough")

func (e eventStreamer) ChatCompletion(context.Context, *llm.ChatRequest) (*llm.ChatResponse, error) {
	return nil, &provider.Error{Kind: provider.KindInternal, Err: errNotChat}
}

func (e eventStreamer) ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (provider.ChatStream, error) {
	nr, err := e.native(req.Model)
	if err != nil {
		return nil, err
	}
	es, err := e.np.MessagesStream(ctx, nr)
	if err != nil {
		return nil, err
	}
	return &eventChunks{es: es}, nil
}

// eventChunks turns events into chunks: an event that commits carries its
// text as content (or, with none, an empty finish reason, which commits
// too); message_delta carries the usage so far, for billing.
type eventChunks struct {
	es    provider.EventStream
	chunk llm.ChatChunk
	frame []byte
}

func (c *eventChunks) Next() bool {
	if !c.es.Next() {
		return false
	}
	ev := c.es.Event()
	c.frame = append(c.frame[:0], "event: "...)
	c.frame = append(c.frame, ev.Name...)
	c.frame = append(c.frame, "\ndata: "...)
	c.frame = append(c.frame, ev.Data...)
	c.frame = append(c.frame, "\n\n"...)
	c.chunk = llm.ChatChunk{Raw: c.frame}
	if ev.Commits {
		ch := llm.ChunkChoice{}
		if ev.Text != "" {
			ch.Delta.Content = llm.Ptr(ev.Text)
		} else {
			ch.FinishReason = llm.Ptr("")
		}
		c.chunk.Choices = []llm.ChunkChoice{ch}
	}
	if ev.Name == "message_delta" {
		c.chunk.Usage = c.es.Usage()
	}
	return true
}

func (c *eventChunks) Chunk() *llm.ChatChunk { return &c.chunk }

func (c *eventChunks) ByteRelayed() bool {
	b, ok := c.es.(provider.ByteRelayed)
	return ok && b.ByteRelayed()
}
func (c *eventChunks) Err() error   { return c.es.Err() }
func (c *eventChunks) Close() error { return c.es.Close() }

func (c *eventChunks) Buffered() bool {
	b, ok := c.es.(provider.BufferedStream)
	return ok && b.Buffered()
}

// codeNotNative marks a target that cannot count tokens: the caller
// estimates. A fresh error each time: the run annotates the errors it sees.
const codeNotNative = "count_tokens_unsupported"

// CountTokens asks the first native target of the plan that answers to
// count the request's input tokens; nil, with no error, when no target
// speaks Anthropic's API (the caller then estimates). Nothing is billed.
func (g *Gateway) CountTokens(ctx context.Context, req *MessagesRequest) (*provider.RawAnswer, Outcome, error) {
	plan, err := g.messagesPlan(req)
	if err != nil {
		return nil, Outcome{}, err
	}
	r := g.newRun(ctx, plan)
	ans, err := try(r, func(p provider.Provider, t router.Target) (*provider.RawAnswer, error) {
		np, native := p.(provider.MessagesPassthrough)
		if !native {
			return nil, &provider.Error{Kind: provider.KindUnsupported, Code: codeNotNative, Message: "the target does not count tokens"}
		}
		nr, err := req.Native(t.Model)
		if err != nil {
			return nil, err
		}
		actx, _, end := g.startAttempt(ctx, t)
		ans, err := np.CountTokens(actx, nr)
		end(err)
		return ans, err
	})
	out := r.outcome()
	if err != nil && provider.AsError(err).Code == codeNotNative {
		return nil, out, nil
	}
	return ans, out, err
}
