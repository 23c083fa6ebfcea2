package gateway

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/timing"
)

func (s *Stream) holdSlot(release func()) { s.slot = release }

// ChatStream opens a stream and holds it until its first chunk, so that a
// target failing before it produced anything costs the client nothing: the
// next target is tried. The first chunk is replayed by the returned stream.
func (g *Gateway) ChatStream(ctx context.Context, call *Call, req *llm.ChatRequest) (*Stream, Outcome, error) {
	plan, err := g.chatPlan(req)
	if err != nil {
		return nil, Outcome{}, err
	}
	timing.From(ctx).Chose(plan.Reason)
	est := estimate(req, plan.Targets, g.outputCap())
	releaseRoute, err := takeRoute(plan)
	if err != nil {
		return nil, Outcome{}, err
	}
	tab, err := g.open(ctx, call, est)
	if err != nil {
		releaseRoute()
		return nil, Outcome{}, err
	}
	timing.From(ctx).Routed()
	v := g.verifier(plan)
	if v != nil || plan.Route.Resume {
		// A cascade and a resumed answer rewrite chunks: decode them whole.
		ctx = provider.WithByteRelay(ctx, false)
	}
	r := g.newRun(ctx, plan)
	var s *Stream
	if v != nil {
		s, err = g.cascadeStream(ctx, r, v, call, req, tab, est.PromptTokens)
	} else if delay := plan.HedgeDelay(); delay > 0 {
		s, err = g.hedged(r, req, delay, tab, est.PromptTokens)
	} else {
		var started time.Time
		s, err = try(r, func(p provider.Provider, t router.Target) (*Stream, error) {
			started = time.Now()
			return g.openStream(ctx, p, t, req)
		})
		if err == nil {
			s.started, s.attempt = started, Attempt{Target: r.route, Number: r.attempts}
		}
	}
	out := r.outcome()
	if err != nil {
		tab.Close()
		releaseRoute()
		return nil, out, err
	}
	s.routeSlot = releaseRoute
	if s.tab != nil {
		return s, out, nil // a cascade's replay: its attempts are billed
	}
	s.tab, s.promptEstimate = tab, est.PromptTokens
	if p, ok := tab.(ProgressTab); ok {
		s.progress = p.Progress
	}
	if plan.Route.Resume && len(req.Tools) == 0 && req.Choices() == 1 {
		s.resume = &resumer{run: r, req: req}
	}
	return s, out, nil
}

// openStream opens a stream on one target and holds it until its first
// chunk. The attempt has its own context: a first token later than
// FirstTokenTimeout cancels this attempt, not the request.
func (g *Gateway) openStream(ctx context.Context, p provider.Provider, t router.Target, req *llm.ChatRequest) (*Stream, error) {
	opened := time.Now()
	tctx, ta, end := g.startAttempt(ctx, t)
	actx, cancel := context.WithCancel(tctx)
	var slow atomic.Bool
	var timer *time.Timer
	if g.FirstTokenTimeout > 0 {
		timer = time.AfterFunc(g.FirstTokenTimeout, func() { slow.Store(true); cancel() })
	}
	fail := func(err error) (*Stream, error) {
		if timer != nil {
			timer.Stop()
		}
		cancel()
		if slow.Load() && ctx.Err() == nil {
			err = &provider.Error{Kind: provider.KindTimeout, Provider: t.Provider, Code: "first_token_timeout",
				Message: fmt.Sprintf("no first token within %s", g.FirstTokenTimeout)}
		}
		end(err)
		return nil, err
	}
	s, err := p.ChatCompletionStream(actx, g.forTarget(ctx, req, t))
	if err != nil {
		return fail(err)
	}
	// The commit point is the first content (text, reasoning, a tool call,
	// a refusal) or the end of the answer, not the first event: OpenAI's
	// role-only first chunk and Anthropic's message_start promise nothing,
	// and an error right after them must still fail over. Events before it
	// are held (copied: the stream reuses its chunk) and replayed.
	var held []llm.ChatChunk
	for {
		if !s.Next() {
			err := s.Err()
			s.Close()
			if err == nil {
				err = &provider.Error{Kind: provider.KindBadResponse, Provider: t.Provider, Message: "upstream stream ended with no output"}
			}
			return fail(err)
		}
		c := s.Chunk()
		if committed(c) || len(held) == maxHeld {
			break
		}
		held = append(held, c.Clone())
	}
	if timer != nil && !timer.Stop() { // the timer fired as the first token came
		s.Close()
		return fail(context.Canceled)
	}
	ta.Token()
	g.Router.Learned.TTFT.Observe(t, time.Since(opened))
	lc := loadCallFrom(tctx)
	if lc != nil {
		lc.FirstToken()
	}
	return &Stream{inner: s, held: held, pending: true, wantUsage: req.WantsUsage(), cancel: cancel, idle: g.IdleTimeout,
		timing: ta, endAttempt: end, load: lc}, nil
}

// maxHeld bounds the content-less events held before the commit point.
const maxHeld = 32

// committed reports whether a chunk reaching the client commits the stream
// to its target: it carries output, ends a choice, or carries the usage.
func committed(c *llm.ChatChunk) bool {
	if c.HasContent() || c.Usage != nil {
		return true
	}
	for _, ch := range c.Choices {
		if ch.FinishReason != nil {
			return true
		}
	}
	return false
}

// Stream relays an upstream stream: it replays the events held up to the
// commit point, and
// keeps the usage for metering while passing it on only to clients that
// asked. Close bills it: from the provider's usage, or, for a stream that
// broke or was cancelled without one, from what was generated, estimated.
type Stream struct {
	inner     provider.ChatStream
	held      []llm.ChatChunk // events before the commit point, replayed first
	pending   bool            // the chunk that committed the stream, replayed next
	wantUsage bool
	cur       *llm.ChatChunk
	usage     *llm.Usage
	ended     bool // Next returned false
	chars     int  // generated text, for an estimate

	tab            Tab
	attempt        Attempt
	started        time.Time
	promptEstimate int64
	closed         bool
	slot           func() // the answering target's concurrency slot
	routeSlot      func() // the route's concurrency slot
	beforeSettle   func() // waits for the losers of a hedge race to be billed

	// resume, when set, continues a broken text stream on the next target.
	resume *resumer

	// progress, when set, is told what the stream has delivered: every
	// progressChunks chunks or progressPeriod, when the usage came, and at
	// the end, so a crash still bills what was delivered.
	progress  func(Attempt)
	delivered int // chunks handed to the caller
	// sentChunks and sentChars are what the caller last said it wrote to
	// its client (Sent); once it says so, progress counts only that: a chunk
	// handed but held for a coalesced write has not reached anyone yet.
	tracksSent            bool
	sentChunks, sentChars int
	reportedChunks        int
	reportedAt            time.Time
	reportedUsage         bool

	timing     *timing.Attempt
	endAttempt func(error)   // ends the attempt's timeline and in-flight count, once
	load       LoadCall      // the attempt as the load observer sees it; nil: none
	cancel     func()        // ends the attempt's context
	idle       time.Duration // the longest silence allowed between chunks
	silent     atomic.Bool   // the idle watchdog fired
	watchdog   *time.Timer
	// waitingSince is when the wait for the next chunk began (Unix ns), 0
	// while not waiting; watchStopped ends the watchdog.
	waitingSince atomic.Int64
	watchStopped atomic.Bool
	barked       atomic.Bool // it fired and cut; not re-armed
}

func (s *Stream) Next() bool {
	s.report(false)
	for {
		var c *llm.ChatChunk
		switch {
		case len(s.held) > 0:
			c = &s.held[0]
			s.held = s.held[1:]
		case s.pending: // timed when it came
			s.pending = false
			c = s.inner.Chunk()
		case !s.next():
			if s.resume != nil && s.resume.try(s) {
				continue
			}
			s.ended = true
			s.report(true)
			return false
		default:
			c = s.inner.Chunk()
			if len(c.Choices) > 0 {
				s.timing.Token()
			}
		}
		if s.resume != nil {
			var skip bool
			if c, skip = s.resume.observe(c); skip {
				continue
			}
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				s.chars += len(*ch.Delta.Content)
				s.timing.Output(*ch.Delta.Content)
			}
			if ch.Delta.ReasoningContent != nil {
				s.chars += len(*ch.Delta.ReasoningContent)
			}
			for _, tc := range ch.Delta.ToolCalls {
				s.chars += len(tc.Function.Name) + len(tc.Function.Arguments)
			}
		}
		if c.Usage != nil {
			s.usage = c.Usage
			if !s.wantUsage {
				if len(c.Choices) == 0 {
					continue
				}
				cp := *c
				cp.Usage, cp.Raw = nil, nil
				c = &cp
			}
		}
		s.cur = c
		s.delivered++
		return true
	}
}

// ProgressTab is a Tab that keeps a stream's progress (ledger's outbox).
type ProgressTab interface{ Progress(Attempt) }

// Progress pacing: a SIGKILL loses at most this much of a stream's bill.
const (
	progressChunks = 16
	progressPeriod = 250 * time.Millisecond
)

// report tells progress what the caller has been handed so far (every
// chunk before this call was delivered), when it is due.
func (s *Stream) report(final bool) {
	if s.progress == nil {
		return
	}
	fresh := s.usage != nil && !s.reportedUsage
	chunks, chars := s.delivered, s.chars
	if s.tracksSent && !final {
		chunks, chars = s.sentChunks, s.sentChars
	}
	if final && !fresh && chunks == s.reportedChunks {
		return // nothing new since the last report
	}
	if !final && !fresh && (chunks == s.reportedChunks ||
		chunks-s.reportedChunks < progressChunks && time.Since(s.reportedAt) < progressPeriod) {
		return
	}
	s.reportedChunks, s.reportedAt, s.reportedUsage = chunks, time.Now(), s.usage != nil
	a := s.attempt
	if s.usage != nil {
		a.Usage = *s.usage
		a.Status = "ok"
	} else {
		a.Usage = llm.Usage{PromptTokens: int(s.promptEstimate), CompletionTokens: int(EstimateTokens(chars))}
		a.Estimated = true
	}
	s.progress(a)
}

func (s *Stream) Chunk() *llm.ChatChunk { return s.cur }

// Sent tells the stream its caller has written every chunk handed so far
// to the client; from then on a crash bills what was sent, not what was
// only handed over.
func (s *Stream) Sent() {
	s.tracksSent, s.sentChunks, s.sentChars = true, s.delivered, s.chars
}

// Buffered reports whether the next chunk is already in memory.
func (s *Stream) Buffered() bool {
	if len(s.held) > 0 || s.pending {
		return true
	}
	b, ok := s.inner.(provider.BufferedStream)
	return ok && b.Buffered()
}

// next pulls the upstream's next chunk under the idle watchdog: an upstream
// silent for longer than the idle timeout is cut, and the stream ends in a
// timeout error.
func (s *Stream) next() bool {
	if s.idle <= 0 || s.cancel == nil {
		return s.inner.Next()
	}
	// One timer per stream, never touched per chunk (re-arming a runtime
	// timer per chunk was 4% of a relay's CPU): a chunk notes when its wait
	// began, and the timer, when it fires, checks that note.
	s.waitingSince.Store(time.Now().UnixNano())
	if s.watchdog == nil {
		s.watchdog = time.AfterFunc(s.idle, s.bark)
	} else if s.barked.Swap(false) { // it cut an earlier target (resumed since): watch this one
		s.watchdog.Reset(s.idle)
	}
	ok := s.inner.Next()
	s.waitingSince.Store(0)
	return ok
}

// bark is the idle watchdog firing: it cuts the upstream if the current
// wait is older than the idle timeout, else sleeps until it could be.
func (s *Stream) bark() {
	if s.watchStopped.Load() {
		return
	}
	since := s.waitingSince.Load()
	if since == 0 { // not waiting: the client is being written to
		s.watchdog.Reset(s.idle)
		return
	}
	if waited := time.Duration(time.Now().UnixNano() - since); waited < s.idle {
		s.watchdog.Reset(s.idle - waited)
		return
	}
	s.silent.Store(true)
	s.barked.Store(true)
	s.cancel()
}

func (s *Stream) Err() error {
	if s.silent.Load() {
		return &provider.Error{Kind: provider.KindTimeout, Provider: s.attempt.Target.Provider, Code: "stream_stalled",
			Message: fmt.Sprintf("the upstream sent nothing for %s", s.idle)}
	}
	return s.inner.Err()
}

// Close ends the upstream stream and bills it, once.
func (s *Stream) Close() error {
	if s.watchdog != nil {
		s.watchStopped.Store(true)
		s.watchdog.Stop()
	}
	err := s.inner.Close()
	if s.cancel != nil {
		s.cancel()
	}
	if s.endAttempt != nil {
		output := int(EstimateTokens(s.chars))
		if s.usage != nil {
			output = s.usage.CompletionTokens
			s.timing.Tokens(s.usage.PromptTokens, output)
		} else {
			s.timing.Tokens(int(s.promptEstimate), output)
		}
		if s.load != nil {
			s.load.Tokens(output)
		}
		var cause error
		switch {
		case s.ended && s.Err() != nil:
			cause = s.Err()
		case !s.ended:
			cause = &provider.Error{Kind: provider.KindCanceled}
		}
		s.endAttempt(cause)
	}
	if s.slot != nil {
		s.slot()
		s.slot = nil
	}
	if s.routeSlot != nil {
		s.routeSlot()
		s.routeSlot = nil
	}
	if s.closed || s.tab == nil {
		return err
	}
	s.closed = true
	s.tab.Record(s.bill())
	if s.beforeSettle != nil {
		s.beforeSettle()
	}
	s.tab.Close()
	return err
}

// bill is the stream's attempt as it ended: from the provider's usage, or,
// for a stream that broke or was cancelled without one, from what was
// generated, estimated.
func (s *Stream) bill() Attempt {
	a := s.attempt
	a.Latency = time.Since(s.started)
	switch {
	case s.ended && s.Err() == nil:
		a.Status = "ok"
	case s.ended:
		a.Status = "error"
	default:
		a.Status = "canceled" // the client left before the end
	}
	if s.usage != nil {
		a.Usage = *s.usage
	} else {
		// No usage from the provider (a broken or cancelled stream): bill what
		// was generated, estimated, and flag it.
		a.Usage = llm.Usage{PromptTokens: int(s.promptEstimate), CompletionTokens: int(EstimateTokens(s.chars))}
		a.Estimated = true
	}
	return a
}

// ByteRelayed reports whether the answering upstream's chunks were relayed
// as its bytes, scanned rather than decoded (provider.WithByteRelay).
func (s *Stream) ByteRelayed() bool {
	b, ok := s.inner.(provider.ByteRelayed)
	return ok && b.ByteRelayed()
}

// Usage is the provider's final usage, nil if it sent none.
func (s *Stream) Usage() *llm.Usage { return s.usage }
