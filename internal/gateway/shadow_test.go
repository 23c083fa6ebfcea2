package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/router"
)

// purposes is a Meter that notes each request's purpose, then bills on.
type purposes struct {
	Meter
	mu   sync.Mutex
	seen []string
}

func (p *purposes) Open(ctx context.Context, call *Call, est Estimate) (Tab, error) {
	p.mu.Lock()
	p.seen = append(p.seen, call.Purpose)
	p.mu.Unlock()
	return p.Meter.Open(ctx, call, est)
}

// TestShadow: a drawn share of a route's answers is sent to its best target
// off the request path, billed as shadow, and the routed answer graded by
// agreement; an answer by the best itself, or a draw outside the share, is
// not shadowed.
func TestShadow(t *testing.T) {
	cases := []struct {
		name      string
		cheap     step
		best      step
		draw      float64
		answerer  int // the fake that answers: 0 the cheap one, 1 the best
		agreement []float64
		purposes  []string
	}{
		{"agrees after normalising", says("Refund."), says(" refund"), 0.01, 0, []float64{1}, []string{"", "shadow"}},
		{"disagrees", says("refund"), says("chargeback"), 0.01, 0, []float64{0}, []string{"", "shadow"}},
		{"outside the share", says("refund"), says("refund"), 0.5, 0, nil, []string{""}},
		{"the best answered", says("refund"), says("refund"), 0.01, 1, nil, []string{""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cheap, best := newFake("a", c.cheap), newFake("b", c.best)
			fakes := []*fake{cheap, best}
			if c.answerer == 1 {
				fakes = []*fake{best, cheap}
			}
			h := fleet{fakes: fakes}.build(t)
			meter := &purposes{Meter: h.ledger}
			h.g.Meter = meter
			graded := make(chan float64, 1)
			var served router.Target
			h.g.Shadows = map[string]*Shadow{"r": {Share: 0.02, Rand: func() float64 { return c.draw },
				Best:    func() (router.Target, bool) { return best.target(), true },
				Observe: func(s router.Target, a float64) { served = s; graded <- a }}}
			h.send(context.Background(), request(false, "classify: money back please"))
			var got []float64
			if c.agreement != nil {
				select {
				case a := <-graded:
					got = append(got, a)
				case <-time.After(10 * time.Second): // a hang, not a timing assertion
					t.Fatal("no shadow grade")
				}
				if served != cheap.target() {
					t.Errorf("graded target %v, want %v", served, cheap.target())
				}
			}
			if d := cmp.Diff(c.agreement, got); d != "" {
				t.Errorf("agreement (-want +got):\n%s", d)
			}
			meter.mu.Lock()
			defer meter.mu.Unlock()
			if d := cmp.Diff(c.purposes, meter.seen); d != "" {
				t.Errorf("purposes billed (-want +got):\n%s", d)
			}
		})
	}
}
