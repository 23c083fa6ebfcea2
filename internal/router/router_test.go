package router

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/provider"
)

func TestPlan(t *testing.T) {
	r := New([]string{"ds", "local"}, map[string][]string{"ds": {"deepseek-chat"}}, []Route{
		{Name: "chat", Targets: []Target{{"ds", "deepseek-chat"}, {"local", "qwen"}}},
		{Name: "ds/deepseek-chat", Targets: []Target{{"local", "override"}}},
	})
	cases := map[string][]Target{
		"chat":             {{"ds", "deepseek-chat"}, {"local", "qwen"}},
		"local/any/model":  {{"local", "any/model"}},
		"ds/deepseek-chat": {{"local", "override"}}, // a public name wins
	}
	for model, want := range cases {
		got, err := r.Plan(model)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: %s", model, d)
		}
	}
	for _, bad := range []string{"", "nope", "ds/unlisted", "ghost/m", "/m", "ds/"} {
		_, err := r.Plan(bad)
		if err == nil {
			t.Errorf("%q planned", bad)
			continue
		}
		if k := provider.AsError(err).Kind; k != provider.KindNotFound && k != provider.KindInvalidRequest {
			t.Errorf("%q: kind %s", bad, k)
		}
	}
	if d := cmp.Diff([]string{"chat", "ds/deepseek-chat", "ds/deepseek-chat"}, r.Models()); d != "" {
		t.Error(d)
	}
}

func TestWeightedPlans(t *testing.T) {
	a, b, c := Target{"a", "m"}, Target{"b", "m"}, Target{"c", "m"}
	r := New([]string{"a", "b", "c"}, nil, []Route{{Name: "w", Targets: []Target{a, b, c}, Weights: []float64{3, 1, 0}}})
	first := map[Target]int{}
	for i := 0; i < 4000; i++ {
		plan, err := r.Plan("w")
		if err != nil {
			t.Fatal(err)
		}
		if len(plan) != 3 || plan[2] != c {
			t.Fatalf("plan %v: every target must stay, the weight-0 one last", plan)
		}
		first[plan[0]]++
	}
	if share := float64(first[a]) / 4000; share < 0.71 || share > 0.79 {
		t.Errorf("weight 3 of 4 came first %.2f of the time, want about 0.75", share)
	}
}
