package gateway

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// progressLedger is the harness's ledger with a stream's progress notes
// (the outbox's, in production).
type progressLedger struct {
	*ledger
	mu    sync.Mutex
	notes []Attempt
}

func (l *progressLedger) Open(context.Context, *Call, Estimate) (Tab, error) { return l, nil }

func (l *progressLedger) Progress(a Attempt) {
	l.mu.Lock()
	l.notes = append(l.notes, a)
	l.mu.Unlock()
}

// TestProgressCountsWhatWasSent: once the caller reports what it wrote
// (Sent), a progress note — what a crash bills — never counts chunks it was
// handed but still holds for a coalesced write. Before Sent existed, the
// note after 16 handed chunks billed text no client had received.
func TestProgressCountsWhatWasSent(t *testing.T) {
	text := make([]string, 40)
	for i := range text {
		text[i] = strings.Repeat("x", 40) // 10 tokens' worth a chunk
	}
	h := fleet{fakes: []*fake{newFake("a", step{text: text})}}.build(t)
	pl := &progressLedger{ledger: h.ledger}
	h.g.Meter = pl
	s, _, err := h.g.ChatStream(context.Background(), &Call{}, request(true, "hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	handed, sentChars := 0, 0
	for s.Next() {
		handed++
		if handed <= 5 { // the first five go out; the rest are held
			s.Sent()
			sentChars = s.chars
		}
		pl.mu.Lock()
		for _, n := range pl.notes {
			if n.Usage.CompletionTokens > int(EstimateTokens(sentChars)) {
				t.Fatalf("after %d chunks handed, %d sent: a progress note bills %d tokens, more than the %d sent",
					handed, min(handed, 5), n.Usage.CompletionTokens, EstimateTokens(sentChars))
			}
		}
		pl.mu.Unlock()
	}
	if handed < len(text) {
		t.Fatalf("read %d chunks, want at least %d", handed, len(text))
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.notes) == 0 {
		t.Fatal("no progress note at all")
	}
}
