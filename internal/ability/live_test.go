package ability

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/router"
)

// TestLiveQualityMovesPrompts: verdicts under the bar on the cheap target's
// answers move its prompts to a stronger target; verdicts above it, too few
// verdicts, or out-of-range scores do not; a new eval run restores it.
func TestLiveQualityMovesPrompts(t *testing.T) {
	skill := [][]float64{{0.97, 0.1, 0.1, 0.1}, {0.97, 0.97, 0.97, 0.97}}
	res, _ := results(400, skill, 5)
	cheap, dear := router.Target{Provider: "sim", Model: "m0"}, router.Target{Provider: "sim", Model: "m1"}
	ts := []router.Target{dear, cheap}
	req := &router.Request{Messages: []llm.Message{{Role: "user", Content: llm.TextContent(prompt(0, 99999))}}}
	type verdicts struct {
		score float64
		n     int
	}
	cases := []struct {
		name    string
		given   []verdicts
		first   router.Target
		demoted []router.Target
		live    float64
	}{
		{"no verdicts", nil, cheap, nil, 0},
		{"good verdicts", []verdicts{{1, 30}}, cheap, nil, 1},
		{"bad but too few", []verdicts{{0, liveMin - 1}}, cheap, nil, 0},
		{"bad verdicts", []verdicts{{0, liveMin}}, dear, []router.Target{cheap}, 0},
		{"mostly good", []verdicts{{1, 40}, {0, 2}}, cheap, nil, 40.0 / 42},
		{"the window forgets", []verdicts{{0, 30}, {1, liveWindow}}, dear, []router.Target{cheap}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Route{Name: "r", Suite: "s", Bar: 0.95, Targets: ts,
				Cost: func(t router.Target) (float64, bool) { return map[string]float64{"m0": 1, "m1": 50}[t.Model], true }}
			r.Teach(res)
			for _, v := range c.given {
				for i := 0; i < v.n; i++ {
					if !r.Observe(cheap, v.score) {
						t.Fatal("a verdict was refused")
					}
				}
			}
			if got := r.Order(req, ts)[0]; got != c.first {
				t.Errorf("first target %v, want %v", got, c.first)
			}
			if d := cmp.Diff(c.demoted, r.Demoted()); d != "" {
				t.Errorf("demoted (-want +got):\n%s", d)
			}
			if live, _ := r.LiveQuality(); live != c.live {
				t.Errorf("live quality %v, want %v", live, c.live)
			}
		})
	}
}

func TestLiveQualityRefusesAndResets(t *testing.T) {
	skill := [][]float64{{0.97, 0.1, 0.1, 0.1}, {0.97, 0.97, 0.97, 0.97}}
	res, _ := results(400, skill, 5)
	res2, _ := results(400, skill, 6)
	cheap, dear := router.Target{Provider: "sim", Model: "m0"}, router.Target{Provider: "sim", Model: "m1"}
	r := &Route{Name: "r", Suite: "s", Bar: 0.95, Targets: []router.Target{dear, cheap}}
	r.Teach(res)
	for _, bad := range []float64{-0.5, 1.5} {
		if r.Observe(cheap, bad) {
			t.Errorf("score %v taken", bad)
		}
	}
	if r.Observe(router.Target{Provider: "x", Model: "y"}, 1) {
		t.Error("a target not on the route taken")
	}
	for i := 0; i < liveMin; i++ {
		r.Observe(cheap, 0)
	}
	if len(r.Demoted()) != 1 {
		t.Fatalf("demoted %v, want the cheap target", r.Demoted())
	}
	r.Teach(res2) // a new eval run
	if d, n := r.Demoted(), 0; len(d) != 0 {
		t.Errorf("after a new run: demoted %v", d)
	} else if _, n = r.LiveQuality(); n != 0 {
		t.Errorf("after a new run: %d verdicts kept", n)
	}
	if b, ok := r.Best(); !ok || b != dear {
		t.Errorf("best %v %v, want %v", b, ok, dear)
	}
}
