package gateway

import (
	"context"
	"time"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/router"
)

// Call says who calls, as which request. Key fields are empty for the master key.
type Call struct {
	// RequestID is the gateway's own id for the request (random): the
	// ledger's key. ClientRequestID is the client's x-request-id, a label only.
	RequestID       string
	ClientRequestID string
	// Purpose tags the ledger rows: "" for traffic, "eval" for eval runs.
	Purpose    string
	KeyID      string
	ProjectID  string
	RPM, TPM   int64
	MaxStreams int64
	// Priority is sent to targets that schedule by priority (see
	// Gateway.Prioritized); batch items carry a low one. 0: none.
	Priority int
}

// Estimate is what a request may cost at worst, for budgets and limits.
type Estimate struct {
	Plan         []router.Target
	PromptTokens int64 // an upper estimate from the request's size
	OutputTokens int64 // max_tokens × n, or the configured cap
	Stream       bool
	Images       Images // an image request: priced per image, not per token
}

// Images is an image request's count, size and quality, as asked (Estimate)
// or delivered (Attempt).
type Images struct {
	N             int64
	Size, Quality string
}

// Attempt is one upstream attempt that consumed tokens.
type Attempt struct {
	Target    router.Target
	Number    int
	Usage     llm.Usage
	Images    Images // images delivered, for an image request
	Estimated bool   // tokens estimated: the provider reported none
	Status    string // ok | error | canceled
	Latency   time.Duration
}

// Meter admits a request against limits and budgets and bills it
// (ledger.Meter). A nil Meter admits everything and bills nothing.
type Meter interface {
	Open(ctx context.Context, call *Call, est Estimate) (Tab, error)
}

// Tab collects a request's attempts; Close settles it, exactly once.
type Tab interface {
	Record(a Attempt)
	Close()
}

type noTab struct{}

func (noTab) Record(Attempt) {}
func (noTab) Close()         {}

// promptBytes sizes a request's prompt: its text, tool calls and tool
// definitions, and a flat allowance for each image or file part. The sum
// saturates at estimateCeiling (see estimate), so it never wraps.
func promptBytes(req *llm.ChatRequest) int64 {
	var size int64
	add := func(n int) { size = min(size+int64(n), estimateCeiling) } // size ≤ ceiling and n < 2^62: no wrap
	for _, m := range req.Messages {
		add(len(m.Content.String()) + 16)
		for _, tc := range m.ToolCalls {
			add(len(tc.Function.Name) + len(tc.Function.Arguments))
		}
		for _, p := range m.Content.Parts {
			if p.Type != "text" {
				add(1024)
			}
		}
	}
	for _, t := range req.Tools {
		add(len(t.Function.Name) + len(t.Function.Description) + len(t.Function.Parameters))
	}
	return size
}

// estimateCeiling bounds each token count of an estimate: far past any
// budget at any price, yet small enough that tokens × price never overflows.
const estimateCeiling = 1 << 40

// estimate bounds a chat request's cost before it runs: about three bytes a
// token for the prompt (tokenizers average nearer four; CJK about three per
// character, which is three bytes), and the output cap for every choice.
// The client's numbers were bounded at the door (llm's Limit…); the
// arithmetic here saturates anyway, so no request can wrap its reservation
// to nothing and pass a hard budget.
func estimate(req *llm.ChatRequest, plan []router.Target, outputCap int64) Estimate {
	out := int64(req.MaxOutputTokens())
	if out <= 0 {
		out = outputCap
	}
	out = min(max(out, 0), estimateCeiling)
	n := int64(req.Choices()) // at least 1
	output := int64(estimateCeiling)
	if out <= estimateCeiling/n {
		output = out * n
	}
	return Estimate{Plan: plan, PromptTokens: (promptBytes(req) + 2) / 3, OutputTokens: output, Stream: req.Stream}
}

// EstimateTokens guesses tokens for text an upstream produced without usage.
func EstimateTokens(chars int) int64 { return int64((chars + 3) / 4) }
