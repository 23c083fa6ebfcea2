package eval

import _ "embed"

// DemoName is the built-in suite's name.
const DemoName = "demo"

// demoJSONL is a small suite over four task kinds (tags classification,
// arithmetic, extraction, short_answer), ten items each, for the demo.
//
//go:embed demo.jsonl
var demoJSONL []byte

// Demo returns the built-in suite, validated.
func Demo() (*Suite, error) {
	p, err := Parse("demo.jsonl", demoJSONL, Options{Format: FormatNative})
	if err != nil {
		return nil, err
	}
	s := &Suite{Name: DemoName, Grader: GraderSpec{Type: TypeExact}, Items: p.Items}
	if err := Validate(s, p.Lines); err != nil {
		return nil, err
	}
	return s, nil
}
