package config

import (
	"math"
	"regexp"
)

// checkCascade checks an ability route's cascade and shadow settings; the
// grader itself compiles the schema when the app is built.
func (c *Config) checkCascade(f string, a *Ability, bad func(field, format string, args ...any)) {
	switch a.Verify {
	case "":
	case "json_schema":
		if _, ok := a.Schema.(map[string]any); !ok {
			bad(f+".schema", "verify json_schema needs a schema (a mapping)")
		}
	case "regex":
		if a.Pattern == "" {
			bad(f+".pattern", "verify regex needs a pattern")
		} else if _, err := regexp.Compile(a.Pattern); err != nil {
			bad(f+".pattern", "bad regex: %v", err)
		}
	case "judge":
		if a.Rubric == "" {
			bad(f+".rubric", "verify judge needs a rubric")
		}
		if c.Evals.Judge == "" {
			bad(f+".verify", "verify judge needs evals.judge")
		}
	default:
		bad(f+".verify", "want json_schema, regex or judge, got %q", a.Verify)
	}
	if math.IsNaN(a.Shadow) || a.Shadow < 0 || a.Shadow > 1 {
		bad(f+".shadow", "want a share of live prompts in [0, 1], got %v", a.Shadow)
	}
}
