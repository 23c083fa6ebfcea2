package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
)

// Judge is a configured model that grades an answer against a rubric. Eval
// runs implement it through tidegate's own call path (so its cost is billed
// and recorded apart from the candidates'); JudgeMessages and
// ParseJudgeReply are the prompt and the reading of the reply they can use.
type Judge interface {
	Judge(ctx context.Context, req JudgeRequest) (JudgeVerdict, error)
}

// JudgeRequest is what a judge sees.
type JudgeRequest struct {
	Prompt    []llm.Message // the item's messages
	Answer    string        // the candidate's answer
	Rubric    string        // what a good answer does
	Reference string        // a reference answer, when the item has one
}

// JudgeVerdict is a judge's grade.
type JudgeVerdict struct {
	Score  float64 `json:"score"` // 0–1
	Reason string  `json:"reason"`
}

// maxReason bounds the reason a judge's reply may carry into a result.
const maxReason = 500

// ErrNoJudge: a judge grader was asked to grade with no judge configured.
var ErrNoJudge = errors.New("eval: a judge grader needs a configured judge model")

func judgeGrader(spec GraderSpec, expected json.RawMessage) (grader, error) {
	rubric, reference := spec.Rubric, ""
	exp := bytes.TrimSpace(expected)
	if len(exp) > 0 && string(exp) != "null" {
		ss, err := expectStrings(expected)
		if err != nil {
			return nil, err
		}
		if rubric == "" {
			rubric = ss[0]
		} else {
			reference = strings.Join(ss, "\n")
		}
	}
	if strings.TrimSpace(rubric) == "" {
		return nil, badExpected("a judge grader needs a rubric (grader.rubric or expected)")
	}
	return gradeFunc(func(ctx context.Context, env *gradeEnv, answer string) (Result, error) {
		if env.judge == nil {
			return Result{}, ErrNoJudge
		}
		v, err := env.judge.Judge(ctx, JudgeRequest{Prompt: env.item.Messages, Answer: answer, Rubric: rubric, Reference: reference})
		if err != nil {
			return Result{}, fmt.Errorf("eval: judge: %w", err)
		}
		// A judge is a model: its number is checked before it is used.
		if !finite(v.Score) || v.Score < 0 || v.Score > 1 {
			return Result{}, fmt.Errorf("eval: judge gave score %v, outside 0–1", v.Score)
		}
		return Result{Score: v.Score, Reason: truncate(v.Reason, maxReason)}, nil
	}), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

const judgeSystem = `You grade an AI assistant's answer to a task against a rubric.
Reply with one JSON object and nothing else: {"score": S, "reason": "…"}, where S is a
number from 0 (fails the rubric) to 1 (fully meets it) and the reason is one short sentence.`

// JudgeMessages is the prompt a judge model is sent.
func JudgeMessages(req JudgeRequest) []llm.Message {
	var b strings.Builder
	b.WriteString("## Task\n")
	for _, m := range req.Prompt {
		fmt.Fprintf(&b, "[%s] %s\n", m.Role, m.Content.String())
	}
	b.WriteString("\n## Answer\n")
	b.WriteString(req.Answer)
	b.WriteString("\n\n## Rubric\n")
	b.WriteString(req.Rubric)
	if req.Reference != "" {
		b.WriteString("\n\n## Reference answer\n")
		b.WriteString(req.Reference)
	}
	return []llm.Message{
		{Role: "system", Content: llm.TextContent(judgeSystem)},
		{Role: "user", Content: llm.TextContent(b.String())},
	}
}

// ParseJudgeReply reads a judge model's reply: the JSON object, bare or in
// a code fence or amid prose; the score must be a number within 0–1.
func ParseJudgeReply(reply string) (JudgeVerdict, error) {
	start, end := strings.IndexByte(reply, '{'), strings.LastIndexByte(reply, '}')
	if start < 0 || end < start {
		return JudgeVerdict{}, errors.New("eval: the judge's reply holds no JSON object")
	}
	var v struct {
		Score  *float64 `json:"score"`
		Reason string   `json:"reason"`
	}
	if err := json.Unmarshal([]byte(reply[start:end+1]), &v); err != nil {
		return JudgeVerdict{}, fmt.Errorf("eval: the judge's reply is not the JSON asked for: %v", err)
	}
	if v.Score == nil || !finite(*v.Score) || *v.Score < 0 || *v.Score > 1 {
		return JudgeVerdict{}, errors.New("eval: the judge's reply has no score within 0–1")
	}
	return JudgeVerdict{Score: *v.Score, Reason: truncate(v.Reason, maxReason)}, nil
}
