package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const abilityRoute = "providers: [{name: a, type: vllm}]\nmodels: [{name: m, targets: [a/x, a/y], route: {ability: %s}}]\n"

func TestCascadeConfig(t *testing.T) {
	cases := []struct{ name, ability, want string }{
		{"unknown verify", "{suite: s, quality: 0.9, verify: exact}", "models[0].route.ability.verify: want json_schema, regex or judge"},
		{"schema missing", "{suite: s, quality: 0.9, verify: json_schema}", "models[0].route.ability.schema: verify json_schema needs a schema"},
		{"bad pattern", "{suite: s, quality: 0.9, verify: regex, pattern: '(['}", "models[0].route.ability.pattern: bad regex"},
		{"judge without a judge", "{suite: s, quality: 0.9, verify: judge, rubric: r}", "models[0].route.ability.verify: verify judge needs evals.judge"},
		{"shadow over one", "{suite: s, quality: 0.9, shadow: 1.5}", "models[0].route.ability.shadow: want a share"},
		{"shadow nan", "{suite: s, quality: 0.9, shadow: .nan}", "models[0].route.ability.shadow: want a share"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(abilityRoute, "%s", tc.ability, 1)), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestCascadeExpected(t *testing.T) {
	cfg, err := Parse([]byte(strings.Replace(abilityRoute, "%s",
		"{suite: s, quality: 0.9, verify: json_schema, schema: {type: object, required: [label]}, shadow: 0.02}", 1)), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Models[0].Route.Ability
	got, err := a.VerifyExpected()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(`{"required":["label"],"type":"object"}`, string(got)); d != "" || a.Shadow != 0.02 {
		t.Errorf("schema (-want +got):\n%s; shadow %v", d, a.Shadow)
	}
}
