package ability

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/router"
)

func TestFeaturize(t *testing.T) {
	tests := []struct {
		name     string
		a, b     string
		wantSame bool
	}{
		{"case folds", "Classify THIS ticket", "classify this ticket", true},
		{"punctuation is not a word", "classify, this ticket!", "classify this ticket", false}, // 3-grams see punctuation
		{"different words differ", "classify this ticket", "compute this sum", false},
		{"empty", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Featurize(tc.a), Featurize(tc.b)
			if same := cmp.Equal(a, b, cmpopts.EquateEmpty()); same != tc.wantSame {
				t.Errorf("same = %v, want %v", same, tc.wantSame)
			}
		})
	}
	// counts: 3 words, 2 bigrams, len-2 trigrams
	text := "ab cd ef"
	n := count(text)
	if want := 3 + 2 + len(text) - 2; n != want {
		t.Errorf("count = %d, want %d", n, want)
	}
	// The streaming dot product equals the vector's.
	w := make([]float32, Dim)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for _, s := range []string{"What is 17 + 25? Reply Answer: N", "Extract the name: 李伟 from Shanghai", "x"} {
		out := make([]float32, 1)
		dots(s, w, 1, out)
		if got, want := out[0], Featurize(s).Dot(w); math.Abs(float64(got-want)) > 1e-4 {
			t.Errorf("%q: streamed dot %v, vector dot %v", s, got, want)
		}
	}
}

// kinds are synthetic task kinds whose prompts differ in their words.
var kinds = []string{"classify the sentiment of this ticket", "compute the sum and reply with the answer", "extract the customer name as json", "answer this geography question briefly"}

func prompt(kind, i int) string {
	return fmt.Sprintf("%s: item %d %s", kinds[kind], i, []string{"alpha", "beta", "gamma", "delta", "omega"}[i%5])
}

// results: target t answers kind k right with skill[t][k], drawn.
func results(n int, skill [][]float64, seed uint64) ([]eval.ItemResult, []string) {
	rng := rand.New(rand.NewPCG(seed, 7))
	names := make([]string, len(skill))
	for t := range skill {
		names[t] = fmt.Sprintf("sim/m%d", t)
	}
	var out []eval.ItemResult
	for i := 0; i < n; i++ {
		k := i % len(kinds)
		msgs := []llm.Message{{Role: "user", Content: llm.TextContent(prompt(k, i))}}
		for t := range skill {
			score := 0.0
			if rng.Float64() < skill[t][k] {
				score = 1
			}
			out = append(out, eval.ItemResult{Suite: "s", ItemID: fmt.Sprint(i), Messages: msgs, Model: names[t], Score: score})
		}
	}
	return out, names
}

func TestLearnerPredictsSkillPerKind(t *testing.T) {
	skill := [][]float64{{0.95, 0.1, 0.5, 0.3}, {0.9, 0.9, 0.9, 0.9}}
	res, names := results(800, skill, 1)
	l := Learn(Table(res, names), names, 1)
	for tg := range skill {
		for k := range kinds {
			x := Featurize(prompt(k, 100001))
			got := l.Models[tg].Predict(x)
			if math.Abs(got-skill[tg][k]) > 0.15 {
				t.Errorf("target %d kind %d: predicted %.2f, skill %.2f", tg, k, got, skill[tg][k])
			}
		}
	}
}

func TestTable(t *testing.T) {
	msgs := []llm.Message{{Role: "user", Content: llm.TextContent("q")}}
	res := []eval.ItemResult{
		{ItemID: "a", Model: "p/x", Score: 1, Messages: msgs},
		{ItemID: "a", Model: "p/x", Score: 0, Messages: msgs, RunID: "2"}, // a second run averages
		{ItemID: "a", Model: "p/other", Score: 1, Messages: msgs},         // not a target
		{ItemID: "b", Model: "p/y", Score: 7, Messages: msgs},             // out of range: clamped
		{ItemID: "b", Model: "p/x", Score: math.NaN(), Messages: msgs},    // unreadable: ignored
	}
	d := Table(res, []string{"p/x", "p/y"})
	want := [][]float64{{0.5, math.NaN()}, {math.NaN(), 1}}
	if diff := cmp.Diff(want, d.Score, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("scores (-want +got):\n%s", diff)
	}
}

func TestChoose(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		p    []float64
		cost []float64
		tau  float64
		best int
		want int
	}{
		{"cheapest passing", []float64{0.9, 0.95, 0.99}, []float64{1, 3, 10}, 0.8, 2, 0},
		{"cheap fails the bar", []float64{0.5, 0.95, 0.99}, []float64{1, 3, 10}, 0.8, 2, 1},
		{"none passes: the best target", []float64{0.5, 0.8, 0.7}, []float64{1, 3, 10}, 0.9, 2, 2},
		{"none passes, no best: likeliest", []float64{0.5, 0.8, 0.7}, []float64{1, 3, 10}, 0.9, -1, 1},
		{"cost order, not list order", []float64{0.9, 0.9}, []float64{5, 2}, 0.5, 0, 1},
		{"unknown never passes", []float64{nan, 0.9}, []float64{1, 10}, 0.5, 0, 1},
		{"nothing known", []float64{nan, nan}, []float64{1, 10}, 0.5, 0, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := choose(tc.p, tc.cost, tc.tau, tc.best); got != tc.want {
				t.Errorf("choose = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCalibrate(t *testing.T) {
	tests := []struct {
		name       string
		oof, score [][]float64
		cost       []float64
		bar        float64
		wantTau    float64
		wantMet    bool
	}{
		{
			// The cheap target is right where it is confident: a threshold
			// just under its confident predictions keeps the bar at its cost.
			name:  "cheap where confident",
			oof:   [][]float64{{0.9, 0.95}, {0.9, 0.95}, {0.2, 0.95}, {0.2, 0.95}},
			score: [][]float64{{1, 1}, {1, 1}, {0, 1}, {0, 1}},
			cost:  []float64{1, 10}, bar: 0.95, wantTau: 0.21, wantMet: true,
		},
		{
			// Overconfident cheap target: only a threshold above its
			// predictions (the best target for all) keeps the bar.
			name:  "overconfident cheap",
			oof:   [][]float64{{0.9, 0.8}, {0.9, 0.8}, {0.9, 0.8}, {0.9, 0.8}},
			score: [][]float64{{0, 1}, {1, 1}, {0, 1}, {1, 1}},
			cost:  []float64{1, 10}, bar: 0.95, wantTau: 0.91, wantMet: true,
		},
		{
			// Nothing reaches the bar plus its margin, not even the best
			// target: unmet, everything to the best.
			name:  "bar unreachable",
			oof:   [][]float64{{0.9, 0.5}, {0.9, 0.5}, {0.9, 0.5}},
			score: [][]float64{{0, 1}, {0, 0}, {0, 1}},
			cost:  []float64{1, 1}, bar: 1, wantTau: 1.01, wantMet: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Calibrate(tc.oof, tc.score, tc.cost, tc.bar)
			if math.Abs(c.Tau-tc.wantTau) > 1e-9 || c.Met != tc.wantMet {
				t.Errorf("tau %.2f met %v, want %.2f %v (%+v)", c.Tau, c.Met, tc.wantTau, tc.wantMet, c)
			}
			if c.Met && c.Quality < tc.bar*c.Best {
				t.Errorf("quality %.3f under the bar %.3f", c.Quality, tc.bar*c.Best)
			}
		})
	}
}

// The calibrated route keeps its bar on prompts it has not seen, at a
// fraction of the best target's cost.
func TestCalibrationHoldsOnUnseenPrompts(t *testing.T) {
	skill := [][]float64{{0.97, 0.2, 0.5, 0.4}, {0.85, 0.3, 0.97, 0.75}, {0.85, 0.96, 0.8, 0.96}, {0.97, 0.97, 0.97, 0.97}}
	cost := []float64{1, 3, 10, 100}
	train, names := results(1200, skill, 3)
	test, _ := results(1200, skill, 4)
	l := Learn(Table(train, names), names, 1)
	cal := l.Calibrate(cost, 0.95)
	if !cal.Met {
		t.Fatalf("calibration unmet: %+v", cal)
	}
	d := Table(test, names)
	var q, k, best float64
	p := make([]float64, len(names))
	for i, x := range d.X {
		for tg, m := range l.Models {
			p[tg] = m.Predict(x)
		}
		tg := choose(p, cost, cal.Tau, cal.BestTarget)
		q += d.Score[i][tg]
		k += cost[tg]
		best += d.Score[i][3]
	}
	n := float64(len(d.X))
	if q/best < 0.95 || k/n > 0.2*cost[3] {
		t.Errorf("held out: quality %.3f of best, cost %.1f%% of best's", q/best, 100*k/n/cost[3])
	}
}

func TestRouteOrderAndReason(t *testing.T) {
	skill := [][]float64{{0.97, 0.1, 0.1, 0.1}, {0.97, 0.97, 0.97, 0.97}}
	res, names := results(400, skill, 5)
	ts := []router.Target{{Provider: "sim", Model: "m1"}, {Provider: "sim", Model: "m0"}}
	r := &Route{Name: "r", Suite: "s", Bar: 0.95, Targets: ts,
		Cost: func(t router.Target) (float64, bool) { return map[string]float64{"m0": 1, "m1": 50}[t.Model], true }}
	req := func(k int) *router.Request {
		return &router.Request{Messages: []llm.Message{{Role: "user", Content: llm.TextContent(prompt(k, 99999))}}}
	}
	got, why := r.Explain(req(0), ts)
	if !cmp.Equal(got, ts) || why == "" {
		t.Errorf("before results: %v %q, want the configured order", got, why)
	}
	_ = names
	r.Teach(res)
	if got, why = r.Explain(req(0), ts); got[0] != ts[1] {
		t.Errorf("kind the cheap target solves: first %v (%s), want the cheap sim/m0", got[0], why)
	}
	if got := r.Order(req(1), ts); got[0] != ts[0] {
		t.Errorf("kind only the dear target solves: first %v, want sim/m1", got[0])
	}
}

// BenchmarkAbilityChoose is choosing on a route learned from a
// 10,000-item suite: p99 is reported, the bar is 50 µs.
func BenchmarkAbilityChoose(b *testing.B) {
	skill := [][]float64{{0.97, 0.2, 0.5, 0.4}, {0.85, 0.3, 0.97, 0.75}, {0.85, 0.96, 0.8, 0.96}, {0.97, 0.97, 0.97, 0.97}}
	res, names := results(10_000, skill, 9)
	ts := make([]router.Target, len(names))
	for i, n := range names {
		ts[i], _ = router.ParseTarget(n)
	}
	cost := map[string]float64{"m0": 1, "m1": 3, "m2": 10, "m3": 100}
	r := &Route{Name: "r", Suite: "s", Bar: 0.95, Targets: ts, Cost: func(t router.Target) (float64, bool) { return cost[t.Model], true }}
	r.Teach(res)
	// A ticket-sized prompt of ~600 bytes.
	text := prompt(1, 5) + " " + fmt.Sprint(make([]int, 120))
	req := &router.Request{Messages: []llm.Message{{Role: "system", Content: llm.TextContent("You are a helpful assistant.")}, {Role: "user", Content: llm.TextContent(text)}}}
	lat := make([]int64, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := nanotime()
		r.Explain(req, ts)
		lat = append(lat, nanotime()-start)
	}
	b.StopTimer()
	b.ReportMetric(float64(p99(lat))/1e3, "p99-µs")
}
