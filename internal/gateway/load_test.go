package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// capturing answers at once and keeps the priority each request carried.
type capturing struct {
	mu   sync.Mutex
	seen []string // the priority field, "" when absent
}

func (c *capturing) ChatCompletion(_ context.Context, req *llm.ChatRequest) (*llm.ChatResponse, error) {
	c.mu.Lock()
	c.seen = append(c.seen, string(req.Extra["priority"]))
	c.mu.Unlock()
	return &llm.ChatResponse{Object: "chat.completion", Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent("ok")}}},
		Usage: &llm.Usage{PromptTokens: 1, CompletionTokens: 3}}, nil
}

func (c *capturing) ChatCompletionStream(context.Context, *llm.ChatRequest) (provider.ChatStream, error) {
	return nil, errors.New("not streamed here")
}

type observed struct {
	mu     sync.Mutex
	starts []string
	tokens []int
	done   int
}

func (o *observed) Start(t router.Target, batch bool) LoadCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.starts = append(o.starts, t.String()+map[bool]string{true: " batch", false: " online"}[batch])
	return o
}
func (o *observed) FirstToken() {}
func (o *observed) Tokens(n int) {
	o.mu.Lock()
	o.tokens = append(o.tokens, n)
	o.mu.Unlock()
}
func (o *observed) Done(error) { o.mu.Lock(); o.done++; o.mu.Unlock() }

// TestPriorityAndLoad: a target that schedules by priority gets the
// request's priority (online: 0, replacing the client's own; batch: what
// the batch set), one that does not gets none; every attempt is counted in
// the load observer with its class and output tokens.
func TestPriorityAndLoad(t *testing.T) {
	prio, plain := &capturing{}, &capturing{}
	obs := &observed{}
	g := &Gateway{
		Router: router.New(router.Config{
			Providers: []router.Provider{{Name: "gpu", Models: []string{"m"}, Priority: true}, {Name: "cloud", Models: []string{"m"}}},
		}),
		Providers: map[string]provider.Provider{"gpu": prio, "cloud": plain},
		Load:      obs,
	}
	ask := func(ctx context.Context, model string, extra string) {
		req := &llm.ChatRequest{Model: model, Messages: []llm.Message{{Role: "user", Content: llm.TextContent("hi")}}}
		if extra != "" {
			req.Extra = map[string]json.RawMessage{"priority": json.RawMessage(extra)}
		}
		if _, _, err := g.Chat(ctx, nil, req); err != nil {
			t.Fatal(err)
		}
	}
	ask(context.Background(), "gpu/m", "")
	ask(context.Background(), "gpu/m", "-100") // a client trying to jump the queue
	ask(WithPriority(context.Background(), 10), "gpu/m", "")
	ask(context.Background(), "cloud/m", "")
	if d := cmp.Diff([]string{"0", "0", "10"}, prio.seen); d != "" {
		t.Errorf("priority-scheduled target saw (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{""}, plain.seen); d != "" {
		t.Errorf("plain target saw (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"gpu/m online", "gpu/m online", "gpu/m batch", "cloud/m online"}, obs.starts); d != "" {
		t.Errorf("load observer starts (-want +got):\n%s", d)
	}
	if obs.done != 4 || len(obs.tokens) != 4 || obs.tokens[0] != 3 {
		t.Errorf("load observer: done %d, tokens %v", obs.done, obs.tokens)
	}
}
