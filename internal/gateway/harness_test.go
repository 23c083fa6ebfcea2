package gateway

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// The harness runs a real Gateway (real router, health, retry budget and
// slots) over scripted fake providers, in process: the gateway's behaviour
// is tested here, the wire dialects in their own packages.

// step is what a fake does on one call, in this order: wait for a signal,
// wait a delay, then hang, fail or answer. An answer is a stream of text
// chunks that ends, breaks with an error or stalls.
type step struct {
	after <-chan struct{} // wait until closed (or the call's context ends)
	delay time.Duration   // then wait this long (the context ends it early)
	hang  bool            // then wait until the call's context ends
	fail  *provider.Error // or fail before any output
	text  []string        // or answer: the text chunks (default: the fake's name)
	pause time.Duration   // a stream: after the text, wait this long before its end
	brk   *provider.Error // a stream: then break with this error
	stall bool            // a stream: or go silent until the context ends
}

// fake is a scripted provider serving the model "m". Call n takes
// steps[n], the last step repeating; pick, when set, chooses instead.
type fake struct {
	name  string
	steps []step
	pick  func() step

	mu        sync.Mutex
	reqs      []*llm.ChatRequest // what it was sent, in call order
	calls     atomic.Int64
	open      atomic.Int64  // calls running (a stream runs until closed)
	peak      atomic.Int64  // the most calls running at once
	cancelled atomic.Int64  // calls that ended because their context did
	started   chan struct{} // closed at the first call
	once      sync.Once
}

func newFake(name string, steps ...step) *fake {
	return &fake{name: name, steps: steps, started: make(chan struct{})}
}

func (f *fake) target() router.Target { return router.Target{Provider: f.name, Model: "m"} }

// begin counts a call and returns its step.
func (f *fake) begin(req *llm.ChatRequest) step {
	f.calls.Add(1)
	n := f.open.Add(1)
	for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
	}
	f.mu.Lock()
	cp := *req
	f.reqs = append(f.reqs, &cp)
	i := len(f.reqs) - 1
	f.mu.Unlock()
	f.once.Do(func() { close(f.started) })
	if f.pick != nil {
		return f.pick()
	}
	if len(f.steps) == 0 {
		return step{}
	}
	return f.steps[min(i, len(f.steps)-1)]
}

func (f *fake) end(ctx context.Context) {
	f.open.Add(-1)
	if ctx.Err() != nil {
		f.cancelled.Add(1)
	}
}

func (f *fake) request(i int) *llm.ChatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[i]
}

// prelude runs a step up to its answer: nil when the answer may follow.
func (f *fake) prelude(ctx context.Context, st step) error {
	if st.after != nil {
		select {
		case <-st.after:
		case <-ctx.Done():
			return provider.ClassifyTransport(ctx.Err())
		}
	}
	if st.delay > 0 {
		t := time.NewTimer(st.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return provider.ClassifyTransport(ctx.Err())
		}
	}
	if st.hang {
		<-ctx.Done()
		return provider.ClassifyTransport(ctx.Err())
	}
	if st.fail != nil {
		e := *st.fail
		return &e
	}
	return nil
}

func (f *fake) chunks(st step) []string {
	if st.text == nil {
		return []string{f.name}
	}
	return st.text
}

func (f *fake) ChatCompletion(ctx context.Context, req *llm.ChatRequest) (*llm.ChatResponse, error) {
	st := f.begin(req)
	defer f.end(ctx)
	if err := f.prelude(ctx, st); err != nil {
		return nil, err
	}
	text := strings.Join(f.chunks(st), "")
	return &llm.ChatResponse{Model: req.Model, Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent(text)}, FinishReason: "stop"}},
		Usage: &llm.Usage{PromptTokens: 10, CompletionTokens: len(text), TotalTokens: 10 + len(text)}}, nil
}

func (f *fake) ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (provider.ChatStream, error) {
	st := f.begin(req)
	if err := f.prelude(ctx, st); err != nil {
		f.end(ctx)
		return nil, err
	}
	return &fakeStream{ctx: ctx, f: f, st: st, text: f.chunks(st)}, nil
}

// fakeStream sends a role chunk, the text chunks, then a finish chunk with
// usage, or the step's break or stall.
type fakeStream struct {
	ctx    context.Context
	f      *fake
	st     step
	text   []string
	sent   int // chunks sent, the role chunk included
	paused bool
	cur    *llm.ChatChunk
	err    error
	closed sync.Once
}

func (s *fakeStream) Next() bool {
	if s.err != nil {
		return false
	}
	if err := s.ctx.Err(); err != nil {
		s.err = provider.ClassifyTransport(err)
		return false
	}
	c := &llm.ChatChunk{Model: "m", Object: "chat.completion.chunk"}
	switch n := s.sent; {
	case n == 0:
		c.Choices = []llm.ChunkChoice{{Delta: llm.Delta{Role: "assistant", Content: llm.Ptr("")}}}
	case n <= len(s.text):
		c.Choices = []llm.ChunkChoice{{Delta: llm.Delta{Content: llm.Ptr(s.text[n-1])}}}
	case n == len(s.text)+1 && s.st.pause > 0 && !s.paused:
		s.paused = true
		t := time.NewTimer(s.st.pause)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
		return s.Next()
	case s.st.brk != nil:
		e := *s.st.brk
		s.err = &e
		return false
	case s.st.stall:
		<-s.ctx.Done()
		s.err = provider.ClassifyTransport(s.ctx.Err())
		return false
	case n == len(s.text)+1:
		c.Choices = []llm.ChunkChoice{{Delta: llm.Delta{}, FinishReason: llm.Ptr("stop")}}
		c.Usage = &llm.Usage{PromptTokens: 10, CompletionTokens: len(s.text), TotalTokens: 10 + len(s.text)}
	default:
		return false
	}
	s.sent++
	s.cur = c
	return true
}

func (s *fakeStream) Chunk() *llm.ChatChunk { return s.cur }
func (s *fakeStream) Err() error            { return s.err }
func (s *fakeStream) Close() error {
	s.closed.Do(func() { s.f.end(s.ctx) })
	return nil
}

// clock is a fake clock for the health tracker.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ledger is a Meter that keeps every attempt billed.
type ledger struct {
	mu       sync.Mutex
	attempts []Attempt
	settled  int
}

func (l *ledger) Open(context.Context, *Call, Estimate) (Tab, error) { return l, nil }

func (l *ledger) Record(a Attempt) {
	l.mu.Lock()
	l.attempts = append(l.attempts, a)
	l.mu.Unlock()
}

func (l *ledger) Close() {
	l.mu.Lock()
	l.settled++
	l.mu.Unlock()
}

// billed lists the attempts billed as "target status", sorted: a hedge's
// loser may be billed before or after its winner.
func (l *ledger) billed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, a := range l.attempts {
		out = append(out, a.Target.Provider+" "+a.Status)
	}
	slices.Sort(out)
	return out
}

// fleet describes a gateway: one provider per fake, each serving "m", and
// one route "r" over them in order.
type fleet struct {
	fakes []*fake
	route router.Route                 // Name and Targets are filled in
	specs map[string]router.TargetSpec // by fake name
	// health, when set, ejects failing targets (with a fake clock); every
	// gateway has a real retry budget.
	health  bool
	retries *RetryBudget
	// firstToken and idle are the gateway's stream timeouts.
	firstToken, idle time.Duration
}

type harness struct {
	t      *testing.T
	g      *Gateway
	clock  *clock
	ledger *ledger
	fakes  []*fake
}

func (f fleet) build(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), ledger: &ledger{}, fakes: f.fakes}
	providers := map[string]provider.Provider{}
	var decl []router.Provider
	rt := f.route
	rt.Name, rt.Targets = "r", nil
	for _, fk := range f.fakes {
		providers[fk.name] = fk
		decl = append(decl, router.Provider{Name: fk.name, Models: []string{"m"}, Targets: map[string]router.TargetSpec{"m": f.specs[fk.name]}})
		rt.Targets = append(rt.Targets, fk.target())
	}
	retries := f.retries
	if retries == nil {
		retries = &RetryBudget{}
	}
	h.g = &Gateway{
		Router:    router.New(router.Config{Providers: decl, Routes: []router.Route{rt}}),
		Providers: providers,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Meter:     h.ledger,
		Retries:   retries,

		FirstTokenTimeout: f.firstToken,
		IdleTimeout:       f.idle,
	}
	if f.health {
		// Jitter 0.5 makes an ejection last exactly its nominal time.
		h.g.Health = router.NewHealth(router.HealthConfig{}, h.clock.now, func() float64 { return 0.5 })
	}
	return h
}

// mode is how a request is sent: whole, streamed, or streamed on a hedged
// route.
type mode int

const (
	whole mode = iota
	streamed
	hedgedStream
)

func (m mode) String() string { return [...]string{"whole", "stream", "hedged"}[m] }

func request(stream bool, text string) *llm.ChatRequest {
	return &llm.ChatRequest{Model: "r", Stream: stream, Messages: []llm.Message{{Role: "user", Content: llm.TextContent(text)}}}
}

// answer is what a client made of one request.
type answer struct {
	Text       string
	Resumed    int
	Attempts   int
	Kind       string // the error's kind, "" on success
	Code       string
	RetryAfter time.Duration
}

func failure(err error) answer {
	e := provider.AsError(err)
	return answer{Kind: e.Kind.String(), Code: e.Code, RetryAfter: e.RetryAfter}
}

// send sends req, reads the answer to its end and closes it. A stream that
// breaks reports its text so far and its error.
func (h *harness) send(ctx context.Context, req *llm.ChatRequest) answer {
	h.t.Helper()
	if !req.Stream {
		resp, out, err := h.g.Chat(ctx, &Call{}, req)
		if err != nil {
			a := failure(err)
			a.Attempts = out.Attempts
			return a
		}
		out.Settle()
		return answer{Text: resp.Choices[0].Message.Content.String(), Attempts: out.Attempts}
	}
	s, out, err := h.g.ChatStream(ctx, &Call{}, req)
	if err != nil {
		a := failure(err)
		a.Attempts = out.Attempts
		return a
	}
	defer s.Close()
	a := read(s, nil)
	a.Attempts = out.Attempts
	return a
}

// read pulls a stream to its end, calling each (when set) after each chunk.
func read(s *Stream, each func(c *llm.ChatChunk)) answer {
	var a answer
	var text strings.Builder
	for s.Next() {
		c := s.Chunk()
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
		}
		a.Resumed += c.Resumed
		if each != nil {
			each(c)
		}
	}
	a.Text = text.String()
	if err := s.Err(); err != nil {
		e := failure(err)
		a.Kind, a.Code = e.Kind, e.Code
	}
	return a
}

// calls lists how many calls each fake took.
func (h *harness) calls() []int64 {
	out := make([]int64, len(h.fakes))
	for i, f := range h.fakes {
		out[i] = f.calls.Load()
	}
	return out
}

// free reports whether a slot on t can be taken now (it is given back).
func (h *harness) free(t router.Target) bool {
	plan, err := h.g.Router.Plan(&router.Request{Model: "r"})
	if err != nil {
		h.t.Fatal(err)
	}
	release, ok := plan.TakeTarget(t)
	if ok {
		release()
	}
	return ok
}

// fail returns a step that fails with an error of kind k.
func fail(k provider.Kind) step {
	return step{fail: &provider.Error{Kind: k, Message: "scripted " + k.String()}}
}

// eject takes t out of plans for failures, as three failed calls would.
func (h *harness) eject(t router.Target) {
	for i := 0; i < 3; i++ {
		p, ok, _ := h.g.Health.Admit(t)
		if !ok {
			h.t.Fatalf("%s not admitted before its ejection", t)
		}
		h.g.Health.Done(p, router.Failure, 0)
	}
}
