package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// TestFailover: the first target fails before any output in each way an
// upstream can; the next target answers when another target may do
// better, the client gets the error at once when it may not (its own
// fault), and after a context-length error only a target with a larger
// window follows. Every case runs whole, streamed and streamed on a hedged
// route (whose hedge never fires here): the three share one attempt path.
func TestFailover(t *testing.T) {
	big := map[string]router.TargetSpec{"a": {ContextWindow: 8000}, "b": {ContextWindow: 8000}, "c": {ContextWindow: 128000}}
	ok := func(by string, attempts int) answer { return answer{Text: by, Attempts: attempts} }
	refused := func(k provider.Kind) answer { return answer{Kind: k.String(), Attempts: 1} }
	cases := []struct {
		name  string
		kind  provider.Kind
		specs map[string]router.TargetSpec
		want  answer
		calls []int64
	}{
		{"rate limited", provider.KindRateLimited, nil, ok("b", 2), []int64{1, 1, 0}},
		{"quota exceeded", provider.KindQuotaExceeded, nil, ok("b", 2), []int64{1, 1, 0}},
		{"credential rejected", provider.KindUpstreamAuth, nil, ok("b", 2), []int64{1, 1, 0}},
		{"overloaded", provider.KindOverloaded, nil, ok("b", 2), []int64{1, 1, 0}},
		{"5xx", provider.KindUpstream, nil, ok("b", 2), []int64{1, 1, 0}},
		{"refused or reset", provider.KindUnavailable, nil, ok("b", 2), []int64{1, 1, 0}},
		{"timeout", provider.KindTimeout, nil, ok("b", 2), []int64{1, 1, 0}},
		{"unreadable answer", provider.KindBadResponse, nil, ok("b", 2), []int64{1, 1, 0}},
		{"operation unsupported", provider.KindUnsupported, nil, ok("b", 2), []int64{1, 1, 0}},
		{"invalid request", provider.KindInvalidRequest, nil, refused(provider.KindInvalidRequest), []int64{1, 0, 0}},
		{"content filter", provider.KindContentFilter, nil, refused(provider.KindContentFilter), []int64{1, 0, 0}},
		{"model not found upstream", provider.KindNotFound, nil, refused(provider.KindNotFound), []int64{1, 0, 0}},
		{"too large", provider.KindTooLarge, nil, refused(provider.KindTooLarge), []int64{1, 0, 0}},
		{"context length: the larger window follows", provider.KindContextLength, big, ok("c", 2), []int64{1, 0, 1}},
		{"context length: windows unknown", provider.KindContextLength, nil, refused(provider.KindContextLength), []int64{1, 0, 0}},
		{"context length: no larger window", provider.KindContextLength,
			map[string]router.TargetSpec{"a": {ContextWindow: 128000}, "b": {ContextWindow: 8000}, "c": {ContextWindow: 128000}},
			refused(provider.KindContextLength), []int64{1, 0, 0}},
	}
	for _, m := range []mode{whole, streamed, hedgedStream} {
		for _, c := range cases {
			t.Run(m.String()+"/"+c.name, func(t *testing.T) {
				f := fleet{fakes: []*fake{newFake("a", fail(c.kind)), newFake("b"), newFake("c")}, specs: c.specs, health: true}
				if m == hedgedStream {
					f.route.Hedge = &router.Hedge{After: time.Hour}
				}
				h := f.build(t)
				got := h.send(context.Background(), request(m != whole, "hello"))
				if d := cmp.Diff(c.want, got); d != "" {
					t.Errorf("answer (-want +got):\n%s", d)
				}
				if d := cmp.Diff(c.calls, h.calls()); d != "" {
					t.Errorf("calls per target a, b, c (-want +got):\n%s", d)
				}
			})
		}
	}
}

// TestContextLengthFallbackHedged is issue 9's first bug: on a hedged
// route, a context-length error from the first target was answered after
// one attempt instead of falling back to the larger window.
func TestContextLengthFallbackHedged(t *testing.T) {
	h := fleet{
		fakes: []*fake{newFake("small", fail(provider.KindContextLength)), newFake("large")},
		specs: map[string]router.TargetSpec{"small": {ContextWindow: 8000}, "large": {ContextWindow: 128000}},
		route: router.Route{Hedge: &router.Hedge{After: time.Hour}},
	}.build(t)
	got := h.send(context.Background(), request(true, "a long prompt"))
	if d := cmp.Diff(answer{Text: "large", Attempts: 2}, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestCapabilityFilter: targets that lack what a request needs are never
// called; when none can serve it, the client gets a 400 with no call made.
func TestCapabilityFilter(t *testing.T) {
	tools := []llm.Tool{{Type: "function", Function: llm.ToolFunction{Name: "f"}}}
	image := llm.Content{Parts: []llm.ContentPart{{Type: "image_url", ImageURL: &llm.ImageURL{URL: "data:,x"}}}}
	cases := []struct {
		name  string
		lacks map[string][]string
		req   func(r *llm.ChatRequest)
		want  answer
		calls []int64
	}{
		{"plain text goes first", map[string][]string{"a": {"tools", "vision"}}, func(*llm.ChatRequest) {}, answer{Text: "a", Attempts: 1}, []int64{1, 0}},
		{"tools skip a target without them", map[string][]string{"a": {"tools"}}, func(r *llm.ChatRequest) { r.Tools = tools },
			answer{Text: "b", Attempts: 1}, []int64{0, 1}},
		{"images skip a blind target", map[string][]string{"a": {"vision"}}, func(r *llm.ChatRequest) { r.Messages[0].Content = image },
			answer{Text: "b", Attempts: 1}, []int64{0, 1}},
		{"none able", map[string][]string{"a": {"tools"}, "b": {"tools"}}, func(r *llm.ChatRequest) { r.Tools = tools },
			answer{Kind: "unsupported", Code: "unsupported_capability"}, []int64{0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			specs := map[string]router.TargetSpec{}
			for name, l := range c.lacks {
				specs[name] = router.TargetSpec{Lacks: l}
			}
			h := fleet{fakes: []*fake{newFake("a"), newFake("b")}, specs: specs}.build(t)
			req := request(false, "hello")
			c.req(req)
			if d := cmp.Diff(c.want, h.send(context.Background(), req)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.calls, h.calls()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}

// TestContextFilter: a target clearly too small for the prompt is skipped
// before any call; a prompt too long for every target is refused at once.
func TestContextFilter(t *testing.T) {
	specs := map[string]router.TargetSpec{"a": {ContextWindow: 100}, "b": {ContextWindow: 10000}}
	long := string(make([]byte, 4*1000)) // about 1000 tokens
	cases := []struct {
		name   string
		prompt string
		want   answer
		calls  []int64
	}{
		{"fits both", "hello", answer{Text: "a", Attempts: 1}, []int64{1, 0}},
		{"too long for a", long, answer{Text: "b", Attempts: 1}, []int64{0, 1}},
		{"too long for all", long + long + long + long + long + long + long + long + long + long + long,
			answer{Kind: "context_length", Code: "context_length_exceeded"}, []int64{0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := fleet{fakes: []*fake{newFake("a"), newFake("b")}, specs: specs}.build(t)
			if d := cmp.Diff(c.want, h.send(context.Background(), request(true, c.prompt))); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.calls, h.calls()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}
