package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

var broken = &provider.Error{Kind: provider.KindUnavailable, Message: "upstream closed the connection"}

// TestResume: a text stream that breaks after its first tokens continues
// on the next target, which is sent the text so far as a prefix; the
// client sees one answer. Without resume, or for an error another target
// cannot fix, the stream ends with its error.
func TestResume(t *testing.T) {
	cases := []struct {
		name   string
		resume bool
		fakes  []*fake
		want   answer
		calls  []int64
		billed []string
	}{
		{
			name:   "continues on the next target",
			resume: true,
			fakes:  []*fake{newFake("a", step{text: []string{"Hello, ", "wor"}, brk: broken}), newFake("b", step{text: []string{"ld."}})},
			want:   answer{Text: "Hello, world.", Resumed: 1, Attempts: 1},
			calls:  []int64{1, 1},
			billed: []string{"a error", "b ok"},
		},
		{
			name:   "twice",
			resume: true,
			fakes: []*fake{newFake("a", step{text: []string{"Hel"}, brk: broken}), newFake("b", step{text: []string{"lo, "}, brk: broken}),
				newFake("c", step{text: []string{"world."}})},
			want:   answer{Text: "Hello, world.", Resumed: 2, Attempts: 1},
			calls:  []int64{1, 1, 1},
			billed: []string{"a error", "b error", "c ok"},
		},
		{
			name:   "past a continuation that fails to open",
			resume: true,
			fakes: []*fake{newFake("a", step{text: []string{"Hello, "}, brk: broken}), newFake("b", fail(provider.KindOverloaded)),
				newFake("c", step{text: []string{"world."}})},
			want:   answer{Text: "Hello, world.", Resumed: 1, Attempts: 1},
			calls:  []int64{1, 1, 1},
			billed: []string{"a error", "c ok"},
		},
		{
			name:   "not without resume",
			fakes:  []*fake{newFake("a", step{text: []string{"Hello, ", "wor"}, brk: broken}), newFake("b")},
			want:   answer{Text: "Hello, wor", Kind: "unavailable", Attempts: 1},
			calls:  []int64{1, 0},
			billed: []string{"a error"},
		},
		{
			name:   "not after the client's fault",
			resume: true,
			fakes:  []*fake{newFake("a", step{text: []string{"Hello, "}, brk: &provider.Error{Kind: provider.KindContentFilter}}), newFake("b")},
			want:   answer{Text: "Hello, ", Kind: "content_filter", Attempts: 1},
			calls:  []int64{1, 0},
			billed: []string{"a error"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := fleet{fakes: c.fakes, route: router.Route{Resume: c.resume}}.build(t)
			got := h.send(context.Background(), request(true, "tell me"))
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("answer (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.calls, h.calls()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.billed, h.ledger.billed()); d != "" {
				t.Errorf("billed (-want +got):\n%s", d)
			}
		})
	}
}

// TestResumePrefix: the continuation is the same request with the text so
// far as a trailing assistant message marked prefix.
func TestResumePrefix(t *testing.T) {
	a, b := newFake("a", step{text: []string{"Hello, ", "wor"}, brk: broken}), newFake("b", step{text: []string{"ld."}})
	h := fleet{fakes: []*fake{a, b}, route: router.Route{Resume: true}}.build(t)
	h.send(context.Background(), request(true, "tell me"))
	want := []llm.Message{
		{Role: "user", Content: llm.TextContent("tell me")},
		{Role: "assistant", Content: llm.TextContent("Hello, wor"), Prefix: true},
	}
	if d := cmp.Diff(want, b.request(0).Messages); d != "" {
		t.Errorf("continuation's messages (-want +got):\n%s", d)
	}
}

// TestResumeTakesSlot is issue 9's second bug: a continuation took no
// concurrency slot on its new target, so max_concurrency could be
// exceeded. It takes one (a target at its limit is skipped), holds it while
// it streams, gives back the broken target's at once and its own at the end.
func TestResumeTakesSlot(t *testing.T) {
	one := router.TargetSpec{MaxConcurrency: 1}
	specs := map[string]router.TargetSpec{"a": one, "b": one, "c": one}

	t.Run("held while streaming", func(t *testing.T) {
		a, b := newFake("a", step{text: []string{"Hello, "}, brk: broken}), newFake("b", step{text: []string{"wor", "ld."}})
		h := fleet{fakes: []*fake{a, b}, specs: specs, route: router.Route{Resume: true}}.build(t)
		s, _, err := h.g.ChatStream(context.Background(), &Call{}, request(true, "tell me"))
		if err != nil {
			t.Fatal(err)
		}
		var during []bool // after each chunk from b: a free, b free
		got := read(s, func(c *llm.ChatChunk) {
			if b.calls.Load() == 1 {
				during = append(during, h.free(a.target()), h.free(b.target()))
			}
		})
		s.Close()
		if got.Text != "Hello, world." {
			t.Errorf("text %q", got.Text)
		}
		// b's chunks: "wor", "ld.", the finish chunk.
		if d := cmp.Diff([]bool{true, false, true, false, true, false}, during); d != "" {
			t.Errorf("slots free (a, b) while b continues (-want +got):\n%s", d)
		}
		if !h.free(a.target()) || !h.free(b.target()) {
			t.Error("a slot still taken after the stream ended")
		}
	})

	t.Run("a full target is skipped", func(t *testing.T) {
		a, b, c := newFake("a", step{text: []string{"Hello, "}, brk: broken}), newFake("b"), newFake("c", step{text: []string{"world."}})
		h := fleet{fakes: []*fake{a, b, c}, specs: specs, route: router.Route{Resume: true}}.build(t)
		plan, _ := h.g.Router.Plan(&router.Request{Model: "r"})
		releaseB, ok := plan.TakeTarget(b.target()) // another request holds b's only slot
		if !ok {
			t.Fatal("b busy before the test")
		}
		defer releaseB()
		// a is the first target, so a's first chunk comes before b is needed.
		got := h.send(context.Background(), request(true, "tell me"))
		if d := cmp.Diff(answer{Text: "Hello, world.", Resumed: 1, Attempts: 1}, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
		if d := cmp.Diff([]int64{1, 0, 1}, h.calls()); d != "" {
			t.Errorf("calls (-want +got):\n%s", d)
		}
	})

	t.Run("two continuations never share a slot", func(t *testing.T) {
		a := newFake("a", step{text: []string{"Hello, "}, brk: broken})
		b, c := newFake("b", step{text: []string{"wor", "ld."}}), newFake("c", step{text: []string{"wor", "ld."}})
		two := map[string]router.TargetSpec{"a": {MaxConcurrency: 2}, "b": one}
		h := fleet{fakes: []*fake{a, b, c}, specs: two, route: router.Route{Resume: true}}.build(t)
		var streams []*Stream
		for i := 0; i < 2; i++ {
			s, _, err := h.g.ChatStream(context.Background(), &Call{}, request(true, "tell me"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			streams = append(streams, s)
		}
		// The first breaks and continues on b, and is still streaming from
		// it when the second breaks.
		var first strings.Builder
		for b.calls.Load() == 0 && streams[0].Next() {
			for _, ch := range streams[0].Chunk().Choices {
				if ch.Delta.Content != nil {
					first.WriteString(*ch.Delta.Content)
				}
			}
		}
		second := read(streams[1], nil)
		first.WriteString(read(streams[0], nil).Text)
		if first.String() != "Hello, world." || second.Text != "Hello, world." {
			t.Errorf("texts %q and %q", first.String(), second.Text)
		}
		if d := cmp.Diff([]int64{2, 1, 1}, h.calls()); d != "" {
			t.Errorf("calls (-want +got):\n%s", d)
		}
		if n := b.peak.Load(); n != 1 {
			t.Errorf("b, limited to 1, served %d calls at once", n)
		}
	})
}

// TestStreamTimeouts: an upstream with no first token in time is replaced
// by the next target; one that goes silent after its first tokens ends the
// stream with stream_stalled, or continues on the next target with resume.
func TestStreamTimeouts(t *testing.T) {
	stalls := step{text: []string{"Hello, "}, stall: true}
	cases := []struct {
		name      string
		a         step
		resume    bool
		want      answer
		calls     []int64
		cancelled int64 // a's calls cut by the gateway
	}{
		{"no first token in time", step{hang: true}, false, answer{Text: "b", Attempts: 2}, []int64{1, 1}, 1},
		{"silent after content", stalls, false, answer{Text: "Hello, ", Kind: "timeout", Code: "stream_stalled", Attempts: 1}, []int64{1, 0}, 1},
		{"silent after content, resumed", stalls, true, answer{Text: "Hello, b", Resumed: 1, Attempts: 1}, []int64{1, 1}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := fleet{fakes: []*fake{newFake("a", c.a), newFake("b")}, route: router.Route{Resume: c.resume},
				firstToken: 20 * time.Millisecond, idle: 20 * time.Millisecond}.build(t)
			if d := cmp.Diff(c.want, h.send(context.Background(), request(true, "hello"))); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.calls, h.calls()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
			if n := h.fakes[0].cancelled.Load(); n != c.cancelled {
				t.Errorf("a: %d calls cut, want %d", n, c.cancelled)
			}
		})
	}
}
