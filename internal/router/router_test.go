package router

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/provider"
)

func TestPlan(t *testing.T) {
	r := New(Config{Providers: []Provider{{Name: "ds", Models: []string{"deepseek-chat"}}, {Name: "local"}}, Routes: []Route{
		{Name: "chat", Targets: []Target{{Provider: "ds", Model: "deepseek-chat"}, {Provider: "local", Model: "qwen"}}},
		{Name: "ds/deepseek-chat", Targets: []Target{{Provider: "local", Model: "override"}}},
	}})
	cases := map[string][]Target{
		"chat":             {{Provider: "ds", Model: "deepseek-chat"}, {Provider: "local", Model: "qwen"}},
		"local/any/model":  {{Provider: "local", Model: "any/model"}},
		"ds/deepseek-chat": {{Provider: "local", Model: "override"}}, // a public name wins
	}
	for model, want := range cases {
		got, err := r.Plan(&Request{Model: model})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got.Targets); d != "" {
			t.Errorf("%s: %s", model, d)
		}
	}
	for _, bad := range []string{"", "nope", "ds/unlisted", "ghost/m", "/m", "ds/"} {
		_, err := r.Plan(&Request{Model: bad})
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
	a, b, c := Target{Provider: "a", Model: "m"}, Target{Provider: "b", Model: "m"}, Target{Provider: "c", Model: "m"}
	r := New(Config{Providers: []Provider{{Name: "a"}, {Name: "b"}, {Name: "c"}},
		Routes: []Route{{Name: "w", Targets: []Target{a, b, c}, Order: &Weighted{Weights: []float64{3, 1, 0}}}}})
	first := map[Target]int{}
	for i := 0; i < 4000; i++ {
		p, err := r.Plan(&Request{Model: "w"})
		if err != nil {
			t.Fatal(err)
		}
		plan := p.Targets
		if len(plan) != 3 || plan[2] != c {
			t.Fatalf("plan %v: every target must stay, the weight-0 one last", plan)
		}
		first[plan[0]]++
	}
	if share := float64(first[a]) / 4000; share < 0.71 || share > 0.79 {
		t.Errorf("weight 3 of 4 came first %.2f of the time, want about 0.75", share)
	}
}

func TestCredentialsExpandAndRotate(t *testing.T) {
	a, b := Target{Provider: "multi", Model: "m"}, Target{Provider: "single", Model: "m"}
	r := New(Config{Providers: []Provider{{Name: "multi"}, {Name: "single"}}, Routes: []Route{{Name: "r", Targets: []Target{a, b}}}})
	r.SetCredentials(map[string][]string{"multi": {"0", "1", "2"}})
	firsts := map[string]int{}
	for i := 0; i < 30; i++ {
		p, _ := r.Plan(&Request{Model: "r"})
		plan := p.Targets
		if len(plan) != 4 || plan[3] != b || plan[0].String() != "multi/m" {
			t.Fatalf("plan %v", plan)
		}
		seen := map[string]bool{}
		for _, tg := range plan[:3] {
			seen[tg.Credential] = true
		}
		if len(seen) != 3 {
			t.Fatalf("a plan lacks a credential: %v", plan)
		}
		firsts[plan[0].Credential]++
	}
	if firsts["0"] != 10 || firsts["1"] != 10 || firsts["2"] != 10 {
		t.Errorf("first credentials did not rotate evenly: %v", firsts)
	}
	if p, _ := r.Plan(&Request{Model: "r"}); p.Targets[0].ProviderKey() != "multi#"+p.Targets[0].Credential || p.Targets[3].ProviderKey() != "single" {
		t.Errorf("provider keys: %v", p.Targets)
	}
}
