package sim

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/llm"
)

// A model with skills answers the demo suite's items right with its skill
// for the item's kind, the same way every time under a seed; a model
// without skills answers as before.
func TestSkillsAnswerDemoItems(t *testing.T) {
	s, err := eval.Demo()
	if err != nil {
		t.Fatal(err)
	}
	models := []Model{
		{Name: "sure", Skills: map[string]float64{"classification": 1, "arithmetic": 1, "extraction": 1, "short_answer": 1}},
		{Name: "never", Skills: map[string]float64{"classification": 0}},
		{Name: "half", Skills: map[string]float64{"classification": 0.5, "arithmetic": 0.5, "extraction": 0.5, "short_answer": 0.5}},
		{Name: "plain"},
	}
	run := func(seed uint64) map[string][]float64 {
		f := New("sim", seed, models)
		out := map[string][]float64{}
		for _, m := range models {
			for i, it := range s.Items {
				resp, err := f.ChatCompletion(context.Background(), &llm.ChatRequest{Model: m.Name, Messages: it.Messages})
				if err != nil {
					t.Fatal(err)
				}
				c, _ := s.Check(i)
				r, err := c.Grade(context.Background(), resp.Choices[0].Message.Content.String(), nil)
				if err != nil {
					t.Fatal(err)
				}
				out[m.Name] = append(out[m.Name], r.Score)
			}
		}
		return out
	}
	got := run(3)
	mean := func(xs []float64) float64 {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	if m := mean(got["sure"]); m != 1 {
		t.Errorf("skill 1: mean score %.2f, want 1", m)
	}
	if m := mean(got["never"]); m != 0 {
		t.Errorf("skill 0: mean score %.2f, want 0", m)
	}
	if m := mean(got["plain"]); m != 0 {
		t.Errorf("no skills: mean score %.2f, want 0 (answers as any prompt)", m)
	}
	if m := mean(got["half"]); m < 0.25 || m > 0.75 {
		t.Errorf("skill 0.5: mean score %.2f over %d items", m, len(s.Items))
	}
	if diff := cmp.Diff(got, run(3)); diff != "" {
		t.Errorf("same seed, different answers:\n%s", diff)
	}
}
