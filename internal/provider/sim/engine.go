// Package sim is tidegate's simulated model fleet: models with a configured
// time to first token, decode rate, output length and faults, deterministic
// under a seed. It serves in-process as a provider and over HTTP as an
// OpenAI-compatible upstream, for the demo, tests, chaos drills and benchmarks.
package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidegate/tidegate/internal/llm"
)

// Marker starts every simulated answer, so no one mistakes it for a model's.
const Marker = "[simulated]"

// Fingerprint is the system_fingerprint of simulated answers.
const Fingerprint = "tidegate-sim"

// Fault kinds.
const (
	FaultNone      = ""
	Fault429       = "429"
	Fault500       = "500"
	Fault503       = "503"
	FaultCut       = "cut"         // the connection is cut after AfterChunks chunks
	FaultStall     = "stall"       // output stops after AfterChunks chunks until the caller gives up
	FaultMalformed = "malformed"   // an unparsable event after AfterChunks chunks
	FaultHang      = "hang"        // no answer at all, not even headers
	FaultErrEvent  = "error_event" // an error event in the stream after AfterChunks chunks
)

// Fault is a failure a model injects into a share of its requests.
type Fault struct {
	Kind        string        `yaml:"kind"`
	Rate        float64       `yaml:"rate"` // share of requests, 0..1; 0 means 1 when Kind is set
	AfterChunks int           `yaml:"after_chunks"`
	RetryAfter  time.Duration `yaml:"retry_after"`
}

// Model is one simulated model.
type Model struct {
	Name            string        `yaml:"name"`
	TTFT            time.Duration `yaml:"ttft"`
	TokensPerSecond float64       `yaml:"tokens_per_second"` // 0: no pacing
	OutputTokens    int           `yaml:"output_tokens"`     // 0: 16
	ContextWindow   int           `yaml:"context_window"`    // 0: unlimited
	Fault           Fault         `yaml:"fault"`
	// A slow tail: this share of calls waits TailTTFT instead of TTFT.
	TailTTFT time.Duration `yaml:"tail_ttft"`
	TailRate float64       `yaml:"tail_rate"`
	// NetworkDelay holds the response head back this long when the fleet
	// serves over HTTP, outside the processing time it reports (OpenAI's
	// openai-processing-ms): a slow path between gateway and model.
	NetworkDelay time.Duration `yaml:"network_delay"`
	// Head is when a stream's response head goes out over HTTP: HeadAtOnce
	// (the default) or HeadWithFirstToken, as many hosted APIs and servers
	// behind a buffering proxy do.
	Head string `yaml:"head"`
	// NoProcessingHeader leaves out openai-processing-ms, as most
	// upstreams but OpenAI do.
	NoProcessingHeader bool `yaml:"no_processing_header"`
	// Skills is the model's accuracy per task kind (an eval item's first
	// tag), 0–1: it answers a task the fleet knows right with that chance
	// (a kind not listed: never). Unset: it answers tasks like any prompt.
	Skills map[string]float64 `yaml:"skills"`
	// Capacity is how many sequences the model runs at once; the rest
	// queue (see batch.go). 0: unbounded, every call served at once.
	Capacity int `yaml:"capacity"`
	// DecodeSlowdown is how much a full batch slows each sequence's
	// decode (see batch.go); 0 with a capacity: 0.5.
	DecodeSlowdown float64 `yaml:"decode_slowdown"`
}

// Head modes.
const (
	HeadAtOnce         = "at_once"
	HeadWithFirstToken = "with_first_token"
)

// DefaultFleet is the demo fleet: fast, balanced and slow models, one that
// reasons, a flaky one for chaos drills, and one per other endpoint.
func DefaultFleet() []Model {
	return []Model{
		{Name: "fast", TTFT: 30 * time.Millisecond, TokensPerSecond: 200, OutputTokens: 32},
		{Name: "balanced", TTFT: 150 * time.Millisecond, TokensPerSecond: 80, OutputTokens: 64},
		{Name: "slow", TTFT: 800 * time.Millisecond, TokensPerSecond: 20, OutputTokens: 64},
		{Name: "flaky", TTFT: 50 * time.Millisecond, TokensPerSecond: 100, OutputTokens: 32, Fault: Fault{Kind: Fault503, Rate: 0.3}},
		{Name: "embed", OutputTokens: 8},
		// Four models of different skill and (demo) price for ability
		// routing: each of the three cheap ones is strong on some task kinds
		// of the demo suite and weak on others; max is good at all and dear.
		{Name: "nano", TTFT: 20 * time.Millisecond, OutputTokens: 16,
			Skills: map[string]float64{"classification": 0.97, "extraction": 0.5, "arithmetic": 0.15, "short_answer": 0.4}},
		{Name: "mini", TTFT: 40 * time.Millisecond, OutputTokens: 16,
			Skills: map[string]float64{"classification": 0.85, "extraction": 0.97, "arithmetic": 0.3, "short_answer": 0.75}},
		{Name: "pro", TTFT: 80 * time.Millisecond, OutputTokens: 16,
			Skills: map[string]float64{"classification": 0.85, "extraction": 0.8, "arithmetic": 0.96, "short_answer": 0.96}},
		{Name: "max", TTFT: 150 * time.Millisecond, OutputTokens: 16,
			Skills: map[string]float64{"classification": 0.97, "extraction": 0.97, "arithmetic": 0.97, "short_answer": 0.97}},
		{Name: "instruct", TTFT: 30 * time.Millisecond, TokensPerSecond: 200, OutputTokens: 16},
		{Name: "moderation"},
		{Name: "whisper"},
		{Name: "tts"},
		{Name: "image"},
	}
}

var words = strings.Fields(`the tide gate opens at dawn and every token finds its way home through
quiet water while models answer questions about ships harbors lanterns maps rivers bridges
clocks gardens lighthouses engines letters stars mountains valleys islands markets bells
kites orchards windows roads signals compasses anchors sails`)

// plan is what a model will answer to one request. Text is generated on
// demand from (seed, request hash, choice, position), so a million-token
// answer costs no memory.
type plan struct {
	choices      int // n
	tokens       int // text pieces per choice; one piece is one sim token
	json         bool
	wordSeed     uint64
	toolCall     *llm.ToolCall
	promptTokens int
	finish       string
	fault        string
	afterChunks  int
	retryAfter   time.Duration
	ttft         time.Duration
	skip         int // pieces already sent before a continuation
	serial       uint64
	// fixed holds each choice's pieces when the answer is decided whole
	// (a value for a JSON schema, a text cut at a stop sequence) rather
	// than generated on demand.
	fixed [][]string
	// logprobs asks for each content token's log probability, with this
	// many alternatives.
	logprobs    bool
	topLogprobs int
}

// pieces is the number of text pieces of a choice (JSON mode closes the object).
func (p *plan) pieces(choice int) int {
	switch {
	case p.fixed != nil:
		return len(p.fixed[choice])
	case p.json:
		return p.tokens + 1
	}
	return p.tokens
}

// piece is the i-th piece of a choice's text.
func (p *plan) piece(choice, i int) string {
	switch {
	case p.fixed != nil:
		return p.fixed[choice][i]
	case i == 0 && p.json:
		return `{"answer":"` + Marker
	case i == 0:
		return Marker
	case p.json && i == p.tokens:
		return `"}`
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%d", p.wordSeed, choice, i)
	return " " + words[h.Sum64()%uint64(len(words))]
}

// text is a choice's whole answer.
func (p *plan) text(choice int) string {
	var b strings.Builder
	for i := p.skip; i < p.pieces(choice); i++ {
		b.WriteString(p.piece(choice, i))
	}
	return b.String()
}

// engine decides answers; it is safe for concurrent use (it holds no state
// but its configuration: randomness comes from the seed and the request).
type engine struct {
	seed  uint64
	tasks *taskBook // shared by the engine's copies
}

func hashRequest(req *llm.ChatRequest) uint64 {
	h := fnv.New64a()
	for _, m := range req.Messages {
		h.Write([]byte(m.Role))
		h.Write([]byte(m.Content.String()))
		for _, tc := range m.ToolCalls {
			h.Write([]byte(tc.Function.Name))
		}
	}
	if req.Seed != nil {
		fmt.Fprint(h, *req.Seed)
	}
	return h.Sum64()
}

// EstimateTokens is the sim's token count for a text: about four bytes a token.
func EstimateTokens(s string) int {
	if s == "" {
		return 0
	}
	return (len(s) + 3) / 4
}

func promptTokens(req *llm.ChatRequest) int {
	n := 0
	for _, m := range req.Messages {
		n += 4 + EstimateTokens(m.Content.String())
		for _, tc := range m.ToolCalls {
			n += EstimateTokens(tc.Function.Name) + EstimateTokens(tc.Function.Arguments)
		}
	}
	for _, t := range req.Tools {
		n += EstimateTokens(t.Function.Name) + EstimateTokens(string(t.Function.Parameters))
	}
	return n
}

func (e engine) plan(m Model, req *llm.ChatRequest, serial uint64) plan {
	// A trailing prefix message asks to continue an answer: plan the answer
	// to the request without it, then skip the text it already holds.
	var prefix string
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == "assistant" && req.Messages[n-1].Prefix {
		prefix = req.Messages[n-1].Content.String()
		r := *req
		r.Messages = req.Messages[:n-1]
		req = &r
	}
	h := hashRequest(req)
	rng := rand.New(rand.NewPCG(e.seed, h))
	p := plan{promptTokens: promptTokens(req), finish: llm.FinishStop, ttft: m.TTFT, serial: serial}
	if m.TailRate > 0 && rand.New(rand.NewPCG(e.seed^0x7a11, serial)).Float64() < m.TailRate {
		p.ttft = m.TailTTFT
	}

	if m.Fault.Kind != FaultNone {
		rate := m.Fault.Rate
		if rate == 0 {
			rate = 1
		}
		// Faults draw from the request serial, so a flaky model fails a
		// steady share of calls even when they all ask the same thing.
		frng := rand.New(rand.NewPCG(e.seed, serial))
		if frng.Float64() < rate {
			p.fault, p.afterChunks, p.retryAfter = m.Fault.Kind, m.Fault.AfterChunks, m.Fault.RetryAfter
		}
	}

	if tool := chooseTool(req); tool != nil {
		p.toolCall = &llm.ToolCall{
			ID:   fmt.Sprintf("call_sim_%08x", rng.Uint32()),
			Type: "function",
			Function: llm.FunctionCall{
				Name:      tool.Function.Name,
				Arguments: jsonFor(tool.Function.Parameters, rng),
			},
		}
		p.finish = llm.FinishToolCalls
		p.choices = 1
		return p
	}

	n := m.OutputTokens
	if n <= 0 {
		n = 16
	}
	if limit := req.MaxOutputTokens(); limit > 0 && limit < n {
		n, p.finish = limit, llm.FinishLength
	}
	p.choices, p.tokens, p.json, p.wordSeed = req.Choices(), n, jsonWanted(req), rng.Uint64()
	p.logprobs = req.Logprobs != nil && *req.Logprobs
	if p.logprobs && req.TopLogprobs != nil {
		p.topLogprobs = min(max(*req.TopLogprobs, 0), 20)
	}
	if schema := schemaWanted(req); schema != nil {
		// The answer is a value of the schema, in pieces of about a sim
		// token; max_tokens cuts it, as it cuts a model's JSON.
		pieces := splitPieces(jsonFor(schema, rng))
		p.finish, p.json = llm.FinishStop, false
		if limit := req.MaxOutputTokens(); limit > 0 && limit < len(pieces) {
			pieces, p.finish = pieces[:limit], llm.FinishLength
		}
		p.tokens, p.fixed = len(pieces), make([][]string, p.choices)
		for c := range p.fixed {
			p.fixed[c] = pieces
		}
	}
	if answer, ok := e.skillAnswer(m, req, h); ok && p.fixed == nil && !p.json {
		pieces := splitPieces(answer)
		p.tokens, p.fixed = len(pieces), make([][]string, p.choices)
		for c := range p.fixed {
			p.fixed[c] = pieces
		}
	}
	p.applyStop(req.Stop)
	if prefix != "" {
		for at := 0; p.skip < p.pieces(0) && at < len(prefix); p.skip++ {
			at += len(p.piece(0, p.skip))
		}
	}
	return p
}

func jsonWanted(req *llm.ChatRequest) bool {
	return req.ResponseFormat != nil && (req.ResponseFormat.Type == "json_object" || req.ResponseFormat.Type == "json_schema")
}

// schemaWanted is the schema of a json_schema response format, nil without one.
func schemaWanted(req *llm.ChatRequest) json.RawMessage {
	if req.ResponseFormat == nil || req.ResponseFormat.Type != "json_schema" {
		return nil
	}
	var f struct {
		Schema json.RawMessage `json:"schema"`
	}
	if json.Unmarshal(req.ResponseFormat.JSONSchema, &f) != nil || len(f.Schema) == 0 {
		return nil
	}
	return f.Schema
}

// splitPieces cuts a text into pieces of about one sim token (four bytes),
// never inside a character.
func splitPieces(text string) []string {
	var out []string
	for len(text) > 0 {
		n := min(4, len(text))
		for n < len(text) && !utf8.RuneStart(text[n]) {
			n++
		}
		out, text = append(out, text[:n]), text[n:]
	}
	return out
}

// maxStopPieces bounds the answers whose text is scanned for stop sequences.
const maxStopPieces = 1 << 16

// applyStop cuts each choice's text before the first stop sequence in it,
// as models do (the sequence is not sent). The finish reason becomes stop
// when every choice was cut. Answers longer than maxStopPieces are not scanned.
func (p *plan) applyStop(stops llm.Stop) {
	if len(stops) == 0 || p.toolCall != nil || p.pieces(0) > maxStopPieces {
		return
	}
	fixed, cut := make([][]string, p.choices), 0
	for c := range fixed {
		pieces := make([]string, p.pieces(c))
		for i := range pieces {
			pieces[i] = p.piece(c, i)
		}
		text := strings.Join(pieces, "")
		at := -1
		for _, s := range stops {
			if i := strings.Index(text, s); s != "" && i >= 0 && (at < 0 || i < at) {
				at = i
			}
		}
		if at < 0 {
			fixed[c] = pieces
			continue
		}
		cut++
		n := 0
		for _, pc := range pieces {
			if n+len(pc) > at {
				if at > n {
					fixed[c] = append(fixed[c], pc[:at-n])
				}
				break
			}
			fixed[c], n = append(fixed[c], pc), n+len(pc)
		}
	}
	p.fixed = fixed
	if cut == p.choices {
		p.finish = llm.FinishStop
	}
}

// chooseTool picks the tool the sim calls: the named one, else the first, and
// none after a tool result (the model then answers in text).
func chooseTool(req *llm.ChatRequest) *llm.Tool {
	if len(req.Tools) == 0 || len(req.Messages) == 0 {
		return nil
	}
	mode, name := req.ToolChoiceMode()
	// After a tool result the model answers in text, unless it must call one.
	if mode == "none" || mode == "auto" && req.Messages[len(req.Messages)-1].Role == "tool" {
		return nil
	}
	for i := range req.Tools {
		if mode == "function" && req.Tools[i].Function.Name == name {
			return &req.Tools[i]
		}
	}
	return &req.Tools[0]
}

func (p *plan) completionTokens() int {
	if p.toolCall != nil {
		return EstimateTokens(p.toolCall.Function.Name) + EstimateTokens(p.toolCall.Function.Arguments)
	}
	if p.fixed != nil {
		n := 0
		for _, pieces := range p.fixed {
			n += len(pieces) - min(p.skip, len(pieces))
		}
		return n
	}
	return p.choices * (p.tokens - min(p.skip, p.tokens))
}

func (p *plan) usage() *llm.Usage {
	c := p.completionTokens()
	return &llm.Usage{PromptTokens: p.promptTokens, CompletionTokens: c, TotalTokens: p.promptTokens + c}
}

// tokenInterval is the pause between two output pieces.
func (m Model) tokenInterval() time.Duration {
	if m.TokensPerSecond <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / m.TokensPerSecond)
}
