package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// A cascade answers with the plan's first (cheapest) target, checks the
// answer before the client sees it, and escalates to the next target when
// the check fails. Every attempt is billed: a rejected answer is recorded
// with status "rejected".

// Verifier checks an answer of a cascade route. An error means the check
// itself could not run (the judge is down): the answer is then served
// unchecked rather than paid for twice.
type Verifier interface {
	Verify(ctx context.Context, call *Call, req *llm.ChatRequest, answer string) (ok bool, why string, err error)
}

// StatusRejected marks a billed attempt whose answer failed the cascade's check.
const StatusRejected = "rejected"

// PurposeVerify tags the ledger rows of a cascade's judge calls.
const PurposeVerify = "cascade_judge"

func (g *Gateway) verifier(plan *router.Plan) Verifier {
	if g.Verifiers == nil || plan.Route == nil {
		return nil
	}
	return g.Verifiers[plan.Route.Name]
}

// candidate is one attempt's answer held back for checking.
type candidate[T any] struct {
	v      T
	text   string
	a      Attempt
	broken bool // a stream that broke before its end: never checked, never preferred
}

// cascade checks c and escalates through next while the check fails and
// targets remain; it bills every answer it held (the served one too) and
// returns the one to serve.
func cascade[T any](ctx context.Context, r *run, v Verifier, call *Call, req *llm.ChatRequest, tab Tab,
	c candidate[T], next func() (candidate[T], error)) candidate[T] {
	var whole *candidate[T] // the last answer that came whole, should the rest break
	for {
		ok, why := false, "the stream broke"
		if !c.broken {
			if r.next >= len(r.plan.Targets) {
				break // nothing to escalate to: the check would only cost
			}
			var err error
			ok, why, err = v.Verify(ctx, call, req, c.text)
			if err != nil {
				r.g.Logger.LogAttrs(ctx, slog.LevelWarn, "cascade check failed to run; answer served unchecked",
					slog.String("target", c.a.Target.String()), slog.String("error", err.Error()))
				ok = true
			}
		}
		if ok {
			break
		}
		if !c.broken {
			c.a.Status = StatusRejected
			held := c
			whole = &held
		}
		tab.Record(c.a)
		r.g.Logger.LogAttrs(ctx, slog.LevelInfo, "cascade escalates", slog.String("route", r.plan.Route.Name),
			slog.String("target", c.a.Target.String()), slog.String("why", why))
		n, err := next()
		if err != nil {
			if whole == nil {
				return c // only a broken answer: it is already billed
			}
			return *whole
		}
		c = n
	}
	if c.broken && whole != nil {
		tab.Record(c.a)
		return *whole
	}
	tab.Record(c.a)
	return c
}

// answerText is the text the check reads: the first choice's.
func answerText(resp *llm.ChatResponse) string {
	if len(resp.Choices) == 0 {
		return ""
	}
	return resp.Choices[0].Message.Content.String()
}

// chatAttempt is the bill of a non-streamed answer: its usage, or an
// estimate from its text when the provider sent none.
func chatAttempt(req *llm.ChatRequest, plan *router.Plan, r *run, resp *llm.ChatResponse, started time.Time) Attempt {
	a := Attempt{Target: r.route, Number: r.attempts, Status: "ok", Latency: time.Since(started)}
	if resp.Usage != nil {
		a.Usage = *resp.Usage
		return a
	}
	chars := 0
	for _, c := range resp.Choices {
		chars += len(c.Message.Content.String()) + len(c.Message.ReasoningContent)
	}
	a.Usage, a.Estimated = llm.Usage{PromptTokens: int(estimate(req, plan.Targets, 0).PromptTokens), CompletionTokens: int(EstimateTokens(chars))}, true
	return a
}

// cascadeStream answers a streamed request on a cascade route: each
// attempt's stream is held to its end and checked, and the answer served is
// replayed from memory. The client sees nothing until an answer passed.
func (g *Gateway) cascadeStream(ctx context.Context, r *run, v Verifier, call *Call, req *llm.ChatRequest, tab Tab, promptEstimate int64) (*Stream, error) {
	open := func() (candidate[*replay], error) {
		var started time.Time
		s, err := try(r, func(p provider.Provider, t router.Target) (*Stream, error) {
			started = time.Now()
			return g.openStream(ctx, p, t, req)
		})
		if err != nil {
			return candidate[*replay]{}, err
		}
		s.started, s.attempt, s.promptEstimate = started, Attempt{Target: r.route, Number: r.attempts}, promptEstimate
		s.wantUsage = true // kept for the replay, which drops it as the client asked
		rp := &replay{}
		var text strings.Builder
		for s.Next() {
			c := s.Chunk().Clone()
			for _, ch := range c.Choices {
				if ch.Index == 0 && ch.Delta.Content != nil {
					text.WriteString(*ch.Delta.Content)
				}
			}
			rp.chunks = append(rp.chunks, c)
		}
		rp.err = s.Err()
		s.Close() // s.tab is nil: the cascade bills it
		return candidate[*replay]{v: rp, text: text.String(), a: s.bill(), broken: rp.err != nil}, nil
	}
	c, err := open()
	if err != nil {
		return nil, err
	}
	c = cascade(ctx, r, v, call, req, tab, c, open)
	r.route = c.a.Target
	return &Stream{inner: c.v, wantUsage: req.WantsUsage(), tab: settleOnly{tab}, attempt: c.a, started: time.Now(),
		promptEstimate: promptEstimate}, nil
}

// settleOnly is a Tab whose attempts are already recorded.
type settleOnly struct{ Tab }

func (settleOnly) Record(Attempt) {}

// replay is a held stream served from memory.
type replay struct {
	chunks []llm.ChatChunk
	cur    *llm.ChatChunk
	err    error
}

func (p *replay) Next() bool {
	if len(p.chunks) == 0 {
		return false
	}
	p.cur, p.chunks = &p.chunks[0], p.chunks[1:]
	return true
}
func (p *replay) Chunk() *llm.ChatChunk { return p.cur }
func (p *replay) Err() error {
	if len(p.chunks) > 0 {
		return nil
	}
	return p.err
}
func (p *replay) Close() error   { return nil }
func (p *replay) Buffered() bool { return len(p.chunks) > 0 }

// GraderVerifier checks answers with an eval grader: json_schema and regex
// graders are compiled once; a judge grader grades each answer against its
// prompt through the gateway, billed to the caller's project with purpose
// PurposeVerify.
type GraderVerifier struct {
	spec     eval.GraderSpec
	expected json.RawMessage
	fixed    *eval.Check // nil for a judge: it reads each request's prompt
	judge    *Judge
}

// NewGraderVerifier builds a verifier of type json_schema (expected: the
// schema), regex (expected: the pattern) or judge (expected: the rubric,
// judge: the model that grades).
func NewGraderVerifier(g *Gateway, typ string, expected json.RawMessage, judgeModel string) (*GraderVerifier, error) {
	switch typ {
	case eval.TypeJSONSchema, eval.TypeRegex, eval.TypeJudge:
	default:
		return nil, fmt.Errorf("verify: want json_schema, regex or judge, got %q", typ)
	}
	v := &GraderVerifier{spec: eval.GraderSpec{Type: typ}, expected: expected}
	check, err := v.check(nil)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", typ, err)
	}
	if typ == eval.TypeJudge {
		if judgeModel == "" {
			return nil, fmt.Errorf("verify judge: needs evals.judge")
		}
		v.judge = &Judge{G: g, Model: judgeModel, Purpose: PurposeVerify}
	} else {
		v.fixed = check
	}
	return v, nil
}

func (v *GraderVerifier) check(msgs []llm.Message) (*eval.Check, error) {
	s := eval.Suite{Grader: v.spec, Items: []eval.Item{{ID: "answer", Messages: msgs, Expected: v.expected}}}
	return s.Check(0)
}

// Verify implements Verifier; an answer passes with a score of at least 0.5.
func (v *GraderVerifier) Verify(ctx context.Context, call *Call, req *llm.ChatRequest, answer string) (bool, string, error) {
	check, judge := v.fixed, eval.Judge(nil)
	if check == nil {
		var err error
		if check, err = v.check(req.Messages); err != nil {
			return false, "", err
		}
		j := *v.judge
		j.Call = call
		judge = &j
	}
	res, err := check.Grade(ctx, answer, judge)
	if err != nil {
		return false, "", err
	}
	return res.Score >= 0.5, res.Reason, nil
}

// Judge grades through the gateway with a configured model (an eval.Judge):
// its calls are requests of their own, billed with Purpose and labelled
// with the request they grade.
type Judge struct {
	G       *Gateway
	Model   string
	Purpose string
	Call    *Call // the request graded, for the bill's key and label; nil: none
}

// Judge implements eval.Judge.
func (j *Judge) Judge(ctx context.Context, req eval.JudgeRequest) (eval.JudgeVerdict, error) {
	call := &Call{RequestID: ids.Request(), Purpose: j.Purpose}
	if j.Call != nil {
		call.KeyID, call.ProjectID, call.ClientRequestID = j.Call.KeyID, j.Call.ProjectID, "judge:"+j.Call.RequestID
	}
	zero := 0.0
	resp, out, err := j.G.Chat(ctx, call, &llm.ChatRequest{Model: j.Model, Messages: eval.JudgeMessages(req), Temperature: &zero})
	if err != nil {
		return eval.JudgeVerdict{}, fmt.Errorf("judge %s: %s", j.Model, provider.AsError(err).Kind)
	}
	out.Settle()
	return eval.ParseJudgeReply(answerText(resp))
}
