package sim

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// Fleet is the in-process sim provider.
type Fleet struct {
	name    string
	engine  engine
	mu      sync.RWMutex // guards models: a drill changes them while serving
	models  map[string]Model
	serial  atomic.Uint64
	now     func() time.Time
	bmu     sync.Mutex
	batches map[string]*batch // each model's running sequences and queue
}

// New builds a fleet; an empty model list means DefaultFleet.
func New(name string, seed uint64, models []Model) *Fleet {
	if len(models) == 0 {
		models = DefaultFleet()
	}
	f := &Fleet{name: name, engine: engine{seed: seed, tasks: &taskBook{}}, models: make(map[string]Model, len(models)), now: time.Now,
		batches: map[string]*batch{}}
	for _, m := range models {
		f.models[m.Name] = m
	}
	f.SetTasks(DemoTasks())
	return f
}

// Models lists the fleet's model names.
func (f *Fleet) Models() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]string, 0, len(f.models))
	for n := range f.models {
		out = append(out, n)
	}
	return out
}

// Set adds or replaces a model while the fleet serves: a drill injects a
// slowdown or a fault, then takes it back.
func (f *Fleet) Set(m Model) {
	f.mu.Lock()
	f.models[m.Name] = m
	f.mu.Unlock()
}

func (f *Fleet) model(name string) (Model, error) {
	f.mu.RLock()
	m, ok := f.models[name]
	f.mu.RUnlock()
	if !ok {
		return Model{}, &provider.Error{Kind: provider.KindNotFound, Code: "model_not_found", Provider: f.name,
			Message: fmt.Sprintf("the sim fleet has no model %q", name), Status: 404}
	}
	return m, nil
}

// start decides the answer, applies the faults that come before any
// output, takes a running slot (queueing at capacity) and waits the time
// to first token. release gives the slot back.
func (f *Fleet) start(ctx context.Context, req *llm.ChatRequest) (m Model, p plan, release func(), err error) {
	if m, p, err = f.begin(ctx, req); err != nil {
		return m, p, nil, err
	}
	if release, err = f.admit(ctx, m, requestPriority(req), p.promptTokens); err != nil {
		return m, p, nil, err
	}
	if err := sleep(ctx, p.ttft); err != nil {
		release()
		return m, p, nil, err
	}
	return m, p, release, nil
}

// begin decides the answer and applies the faults that come before any output.
func (f *Fleet) begin(ctx context.Context, req *llm.ChatRequest) (Model, plan, error) {
	m, err := f.model(req.Model)
	if err != nil {
		return m, plan{}, err
	}
	p := f.engine.plan(m, req, f.serial.Add(1))
	if m.ContextWindow > 0 && p.promptTokens > m.ContextWindow {
		return m, p, &provider.Error{Kind: provider.KindContextLength, Code: "context_length_exceeded", Provider: f.name, Status: 400,
			Message: fmt.Sprintf("prompt has %d tokens; the model's context is %d", p.promptTokens, m.ContextWindow)}
	}
	if err := faultError(f.name, p); err != nil {
		return m, p, err
	}
	if p.fault == FaultHang {
		<-ctx.Done()
		return m, p, provider.ClassifyTransport(ctx.Err())
	}
	return m, p, nil
}

// faultError is the error of an HTTP-status fault, nil for others.
func faultError(name string, p plan) *provider.Error {
	e := &provider.Error{Provider: name, RetryAfter: p.retryAfter}
	switch p.fault {
	case Fault429:
		e.Kind, e.Status, e.Code, e.Message = provider.KindRateLimited, 429, "rate_limit_exceeded", "simulated rate limit"
	case Fault500:
		e.Kind, e.Status, e.Code, e.Message = provider.KindUpstream, 500, "server_error", "simulated server error"
	case Fault503:
		e.Kind, e.Status, e.Code, e.Message = provider.KindOverloaded, 503, "overloaded", "simulated overload"
	default:
		return nil
	}
	return e
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return provider.ClassifyTransport(ctx.Err())
	}
}

func (f *Fleet) ChatCompletion(ctx context.Context, req *llm.ChatRequest) (*llm.ChatResponse, error) {
	m, p, release, err := f.start(ctx, req)
	if err != nil {
		return nil, err
	}
	defer release()
	return f.complete(ctx, m, p, req)
}

func (f *Fleet) complete(ctx context.Context, m Model, p plan, req *llm.ChatRequest) (*llm.ChatResponse, error) {
	// A whole answer takes as long as its decode would.
	if err := sleep(ctx, time.Duration(p.completionTokens())*f.decodeInterval(m)); err != nil {
		return nil, err
	}
	f.produced(m.Name, p.completionTokens())
	switch p.fault {
	case FaultStall: // a whole answer never comes
		<-ctx.Done()
		return nil, provider.ClassifyTransport(ctx.Err())
	case FaultErrEvent:
		return nil, &provider.Error{Kind: provider.KindUpstream, Provider: f.name, Status: 500, Code: "server_error", Message: "simulated error"}
	case FaultCut, FaultMalformed:
		return nil, &provider.Error{Kind: provider.KindUnavailable, Provider: f.name, Message: "simulated connection cut"}
	}
	return p.response(responseID(&p), req.Model, f.now().Unix()), nil
}

// responseID names an answer by its request's serial: unique per fleet.
func responseID(p *plan) string {
	return fmt.Sprintf("chatcmpl-sim-%d", p.serial)
}

func (p *plan) response(id, model string, created int64) *llm.ChatResponse {
	resp := &llm.ChatResponse{ID: id, Object: "chat.completion", Created: created, Model: model,
		SystemFingerprint: Fingerprint, Usage: p.usage()}
	for i := 0; i < p.choices; i++ {
		msg := llm.Message{Role: "assistant"}
		if p.toolCall != nil {
			msg.ToolCalls = []llm.ToolCall{*p.toolCall}
		} else {
			msg.Content = llm.TextContent(p.text(i))
		}
		resp.Choices = append(resp.Choices, llm.Choice{Index: i, Message: msg, FinishReason: p.finish, Logprobs: p.choiceLogprobs(i)})
	}
	return resp
}

// chunkSeq lays out a stream by index: a role chunk per choice, the pieces
// interleaved across choices (or the tool call in pieces), a finish chunk
// per choice, then usage.
type chunkSeq struct {
	p                     *plan
	base                  llm.ChatChunk
	toolArgs              []string
	roles, body, finishes int
	order                 []piecePos // the body's pieces when the plan's are fixed (choices may differ in length)
}

type piecePos struct{ choice, pos int }

func newChunkSeq(p *plan, id, model string, created int64) *chunkSeq {
	s := &chunkSeq{p: p, base: llm.ChatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model, SystemFingerprint: Fingerprint},
		roles: p.choices, finishes: p.choices}
	if p.toolCall != nil {
		// Arguments arrive in pieces, as real models send them.
		for args := p.toolCall.Function.Arguments; len(args) > 0; {
			n := min(len(args), 8)
			s.toolArgs, args = append(s.toolArgs, args[:n]), args[n:]
		}
		s.body = 1 + len(s.toolArgs)
	} else if p.fixed != nil {
		for pos := p.skip; len(s.order) < p.completionTokens(); pos++ {
			for c := range p.fixed {
				if pos < len(p.fixed[c]) {
					s.order = append(s.order, piecePos{c, pos})
				}
			}
		}
		s.body = len(s.order)
	} else {
		s.body = p.choices * (p.pieces(0) - p.skip)
	}
	return s
}

func (s *chunkSeq) len() int { return s.roles + s.body + s.finishes + 1 }

func (s *chunkSeq) one(i int, d llm.Delta, finish *string) llm.ChatChunk {
	c := s.base
	c.Choices = []llm.ChunkChoice{{Index: i, Delta: d, FinishReason: finish}}
	return c
}

// at builds the k-th chunk.
func (s *chunkSeq) at(k int) llm.ChatChunk {
	p := s.p
	switch {
	case k < s.roles:
		return s.one(k, llm.Delta{Role: "assistant", Content: llm.Ptr("")}, nil)
	case k < s.roles+s.body:
		k -= s.roles
		if p.toolCall != nil {
			if k == 0 {
				tc := *p.toolCall
				tc.Index, tc.Function.Arguments = llm.Ptr(0), ""
				return s.one(0, llm.Delta{ToolCalls: []llm.ToolCall{tc}}, nil)
			}
			return s.one(0, llm.Delta{ToolCalls: []llm.ToolCall{{Index: llm.Ptr(0), Function: llm.FunctionCall{Arguments: s.toolArgs[k-1]}}}}, nil)
		}
		choice, pos := k%p.choices, k/p.choices+p.skip
		if s.order != nil {
			choice, pos = s.order[k].choice, s.order[k].pos
		}
		c := s.one(choice, llm.Delta{Content: llm.Ptr(p.piece(choice, pos))}, nil)
		c.Choices[0].Logprobs = p.pieceLogprobs(choice, pos)
		return c
	case k < s.roles+s.body+s.finishes:
		return s.one(k-s.roles-s.body, llm.Delta{}, llm.Ptr(p.finish))
	default:
		u := s.base
		u.Choices = []llm.ChunkChoice{}
		u.Usage = p.usage()
		return u
	}
}

func (f *Fleet) ChatCompletionStream(ctx context.Context, req *llm.ChatRequest) (provider.ChatStream, error) {
	m, p, release, err := f.start(ctx, req)
	if err != nil {
		return nil, err
	}
	return &stream{ctx: ctx, fleet: f, release: release, name: f.name, model: m, plan: p, seq: newChunkSeq(&p, responseID(&p), req.Model, f.now().Unix())}, nil
}

type stream struct {
	ctx     context.Context
	fleet   *Fleet
	release func() // the running slot, given back when the stream ends
	name    string
	model   Model
	plan    plan
	seq     *chunkSeq
	i       int
	sent    int // content chunks sent, for faults
	cur     llm.ChatChunk
	err     error
}

func (s *stream) Next() bool {
	if s.err != nil || s.i >= s.seq.len() {
		s.end()
		return false
	}
	if s.plan.fault != FaultNone && s.sent >= s.plan.afterChunks {
		switch s.plan.fault {
		case FaultCut:
			s.err = &provider.Error{Kind: provider.KindUnavailable, Provider: s.name, Message: "simulated connection cut"}
			return false
		case FaultMalformed:
			s.err = provider.BadResponse("upstream %s sent a malformed stream event", s.name)
			return false
		case FaultErrEvent:
			s.err = &provider.Error{Kind: provider.KindUpstream, Provider: s.name, Code: "server_error", Message: "simulated error event"}
			return false
		case FaultStall:
			<-s.ctx.Done()
			s.err = provider.ClassifyTransport(s.ctx.Err())
			return false
		}
	}
	s.cur = s.seq.at(s.i)
	s.i++
	if s.cur.HasContent() {
		if s.sent > 0 {
			if err := sleep(s.ctx, s.fleet.decodeInterval(s.model)); err != nil {
				s.err = err
				s.end()
				return false
			}
		}
		s.sent++
		s.fleet.produced(s.model.Name, 1)
	}
	return true
}

func (s *stream) Chunk() *llm.ChatChunk { return &s.cur }

// Buffered: an unpaced model has its next chunk ready at once.
func (s *stream) Buffered() bool { return s.model.tokenInterval() == 0 && s.plan.fault == FaultNone }
func (s *stream) Err() error     { return s.err }
func (s *stream) Close() error   { s.end(); return nil }

// end gives the stream's running slot back (once: release is idempotent).
func (s *stream) end() {
	if s.release != nil {
		s.release()
	}
}

// Embeddings returns unit vectors derived from a hash of each input: the same
// text always maps to the same vector.
func (f *Fleet) Embeddings(ctx context.Context, req *llm.EmbeddingRequest) (*llm.EmbeddingResponse, error) {
	if _, err := f.model(req.Model); err != nil {
		return nil, err
	}
	texts, tokens, err := embeddingInputs(req)
	if err != nil {
		return nil, err
	}
	dims := 8
	if req.Dimensions != nil && *req.Dimensions > 0 && *req.Dimensions <= 4096 {
		dims = *req.Dimensions
	}
	resp := &llm.EmbeddingResponse{Object: "list", Model: req.Model, Usage: &llm.Usage{}}
	for i, t := range texts {
		vec := vectorFor(f.engine.seed, t, dims)
		var raw json.RawMessage
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(vec))
			for j, v := range vec {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
			}
			raw, _ = json.Marshal(base64.StdEncoding.EncodeToString(buf))
		} else {
			raw, _ = json.Marshal(vec)
		}
		resp.Data = append(resp.Data, llm.Embedding{Object: "embedding", Index: i, Embedding: raw})
		resp.Usage.PromptTokens += tokens[i]
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	return resp, nil
}

func vectorFor(seed uint64, text string, dims int) []float32 {
	vec := make([]float32, dims)
	var norm float64
	for i := range vec {
		h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%s", seed, i, text))
		v := float64(int32(binary.LittleEndian.Uint32(h[:4]))) / math.MaxInt32
		vec[i] = float32(v)
		norm += v * v
	}
	norm = math.Sqrt(norm)
	for i := range vec {
		vec[i] = float32(float64(vec[i]) / norm)
	}
	return vec
}

// ImageGeneration returns a tiny PNG per image, tinted by the prompt.
func (f *Fleet) ImageGeneration(ctx context.Context, req *llm.ImageRequest) (*llm.ImageResponse, error) {
	if _, err := f.model(req.Model); err != nil {
		return nil, err
	}
	n := 1
	if req.N != nil {
		n = *req.N
	}
	resp := &llm.ImageResponse{Created: f.now().Unix()}
	for i := 0; i < n; i++ {
		img := base64.StdEncoding.EncodeToString(tinyPNG(req.Prompt, i))
		d := llm.ImageData{B64JSON: img, RevisedPrompt: Marker + " " + req.Prompt}
		if req.ResponseFormat == "url" {
			// A data: URL needs no server to keep images on, in-process or over HTTP.
			d.B64JSON, d.URL = "", "data:image/png;base64,"+img
		}
		resp.Data = append(resp.Data, d)
	}
	return resp, nil
}

// embeddingInputs reads an embedding input as texts, with their token counts:
// strings, or token ids (an array of ints, or of arrays of ints), which the
// sim embeds by their digits.
func embeddingInputs(req *llm.EmbeddingRequest) (texts []string, tokens []int, err error) {
	if texts, ok := req.Inputs(); ok {
		for _, t := range texts {
			tokens = append(tokens, EstimateTokens(t))
		}
		return texts, tokens, nil
	}
	var one []int
	var many [][]int
	switch {
	case json.Unmarshal(req.Input, &one) == nil:
		many = [][]int{one}
	case json.Unmarshal(req.Input, &many) == nil:
	default:
		return nil, nil, provider.Errorf(provider.KindInvalidRequest, "invalid_input",
			"input must be a string, an array of strings, an array of token ids or an array of such arrays")
	}
	for _, ids := range many {
		texts, tokens = append(texts, fmt.Sprint(ids)), append(tokens, len(ids))
	}
	return texts, tokens, nil
}
