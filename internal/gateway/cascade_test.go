package gateway

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/provider"
)

const answerSchema = `{"type": "object", "required": ["label"]}`

func says(text ...string) step { return step{text: text} }

// TestCascade: on a cascade route an answer that fails the check is billed
// as rejected and the next target answers; the client sees only the answer
// served, whole or streamed.
func TestCascade(t *testing.T) {
	good, bad := says(`{"label":`, ` "refund"}`), says("I think ", "it is a refund")
	cases := []struct {
		name   string
		a, b   step
		c      step
		want   answer
		billed []string
		calls  []int64
	}{
		{"cheap answer passes", good, good, good, answer{Text: `{"label": "refund"}`, Attempts: 1}, []string{"a ok"}, []int64{1, 0, 0}},
		{"cheap answer fails, next passes", bad, good, good, answer{Text: `{"label": "refund"}`, Attempts: 2},
			[]string{"a rejected", "b ok"}, []int64{1, 1, 0}},
		{"the last target is served unchecked", bad, bad, bad, answer{Text: "I think it is a refund", Attempts: 3},
			[]string{"a rejected", "b rejected", "c ok"}, []int64{1, 1, 1}},
		{"an escalation that errors fails over", bad, fail(provider.KindUpstream), good, answer{Text: `{"label": "refund"}`, Attempts: 3},
			[]string{"a rejected", "c ok"}, []int64{1, 1, 1}},
		{"no target left: the rejected answer is served", bad, fail(provider.KindUpstream), fail(provider.KindUpstream),
			answer{Text: "I think it is a refund", Attempts: 3}, []string{"a rejected"}, []int64{1, 1, 1}},
	}
	for _, m := range []mode{whole, streamed} {
		for _, c := range cases {
			t.Run(m.String()+"/"+c.name, func(t *testing.T) {
				h := fleet{fakes: []*fake{newFake("a", c.a), newFake("b", c.b), newFake("c", c.c)}}.build(t)
				v, err := NewGraderVerifier(h.g, "json_schema", json.RawMessage(answerSchema), "")
				if err != nil {
					t.Fatal(err)
				}
				h.g.Verifiers = map[string]Verifier{"r": v}
				got := h.send(context.Background(), request(m != whole, "classify: where is my money"))
				if d := cmp.Diff(c.want, got); d != "" {
					t.Errorf("answer (-want +got):\n%s", d)
				}
				if d := cmp.Diff(c.billed, h.ledger.billed()); d != "" {
					t.Errorf("billed (-want +got):\n%s", d)
				}
				if d := cmp.Diff(c.calls, h.calls()); d != "" {
					t.Errorf("calls per target a, b, c (-want +got):\n%s", d)
				}
				if h.ledger.settled != 1 {
					t.Errorf("settled %d times, want once", h.ledger.settled)
				}
			})
		}
	}
}

// TestCascadeBrokenStream: a stream that breaks on the cheap target is
// billed as an error and the next target answers.
func TestCascadeBrokenStream(t *testing.T) {
	broke := step{text: []string{"{"}, brk: &provider.Error{Kind: provider.KindUnavailable, Message: "reset"}}
	h := fleet{fakes: []*fake{newFake("a", broke), newFake("b", says(`{"label": 1}`))}}.build(t)
	v, err := NewGraderVerifier(h.g, "json_schema", json.RawMessage(answerSchema), "")
	if err != nil {
		t.Fatal(err)
	}
	h.g.Verifiers = map[string]Verifier{"r": v}
	got := h.send(context.Background(), request(true, "x"))
	if d := cmp.Diff(answer{Text: `{"label": 1}`, Attempts: 2}, got); d != "" {
		t.Errorf("answer (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"a error", "b ok"}, h.ledger.billed()); d != "" {
		t.Errorf("billed (-want +got):\n%s", d)
	}
}

// TestCascadeJudge: a judge verifier grades through a gateway (its call a
// request of its own) and escalates on a low score.
func TestCascadeJudge(t *testing.T) {
	cases := []struct {
		name  string
		score string
		want  string
		calls []int64
	}{
		{"judge fails the answer", `{"score": 0.2, "reason": "vague"}`, "b", []int64{1, 1}},
		{"judge passes the answer", `{"score": 0.9, "reason": "fine"}`, "a", []int64{1, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			judges := fleet{fakes: []*fake{newFake("j", says(c.score))}}.build(t)
			h := fleet{fakes: []*fake{newFake("a"), newFake("b")}}.build(t)
			v, err := NewGraderVerifier(judges.g, "judge", json.RawMessage(`"names the customer's problem"`), "r")
			if err != nil {
				t.Fatal(err)
			}
			h.g.Verifiers = map[string]Verifier{"r": v}
			got := h.send(context.Background(), request(false, "summarise the ticket"))
			if got.Text != c.want {
				t.Errorf("answer %q, want %q", got.Text, c.want)
			}
			if d := cmp.Diff(c.calls, h.calls()); d != "" {
				t.Errorf("calls per target a, b (-want +got):\n%s", d)
			}
			if d := cmp.Diff([]string{"j ok"}, judges.ledger.billed()); d != "" {
				t.Errorf("judge billed (-want +got):\n%s", d)
			}
		})
	}
}

func TestGraderVerifierConfig(t *testing.T) {
	cases := []struct {
		typ, expected, judge string
		ok                   bool
	}{
		{"json_schema", answerSchema, "", true},
		{"json_schema", `{"type": 7}`, "", false},
		{"regex", `"^[A-Z]+$"`, "", true},
		{"regex", `"(["`, "", false},
		{"judge", `"a rubric"`, "openai/gpt-4o", true},
		{"judge", `"a rubric"`, "", false},
		{"exact", `"x"`, "", false},
	}
	for _, c := range cases {
		_, err := NewGraderVerifier(nil, c.typ, json.RawMessage(c.expected), c.judge)
		if (err == nil) != c.ok {
			t.Errorf("%s %s: error %v, want ok=%v", c.typ, c.expected, err, c.ok)
		}
	}
}
