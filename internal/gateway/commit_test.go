package gateway

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// TestCommitPoint: a stream is committed to its target by its first
// content, not its first event. OpenAI's role-only first chunk (and
// Anthropic's message_start, which the dialect turns into one) promises
// nothing, so an error right after it still fails over at no cost to the
// client; an error after content ends the stream with the text so far.
func TestCommitPoint(t *testing.T) {
	overloaded := &provider.Error{Kind: provider.KindOverloaded}
	cases := []struct {
		name  string
		first step
		want  answer
		calls []int64
	}{
		{"error after the role chunk fails over", step{text: []string{}, brk: overloaded}, answer{Text: "b", Attempts: 2}, []int64{1, 1}},
		{"error after empty content fails over", step{text: []string{"", ""}, brk: overloaded}, answer{Text: "b", Attempts: 2}, []int64{1, 1}},
		{"error after content ends the stream", step{text: []string{"par"}, brk: overloaded},
			answer{Text: "par", Attempts: 1, Kind: provider.KindOverloaded.String()}, []int64{1, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := fleet{fakes: []*fake{newFake("a", c.first), newFake("b")}}.build(t)
			got := h.send(context.Background(), request(true, "hello"))
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("answer (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.calls, h.calls()); d != "" {
				t.Errorf("calls per target (-want +got):\n%s", d)
			}
		})
	}
	// The held role chunk reaches the client first, once.
	h := fleet{fakes: []*fake{newFake("a")}}.build(t)
	s, _, err := h.g.ChatStream(context.Background(), &Call{}, request(true, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var roles []string
	read(s, func(c *llm.ChatChunk) {
		for _, ch := range c.Choices {
			if ch.Delta.Role != "" {
				roles = append(roles, ch.Delta.Role)
			}
		}
	})
	if d := cmp.Diff([]string{"assistant"}, roles); d != "" {
		t.Errorf("roles relayed (-want +got):\n%s", d)
	}
}
