package ledger

import (
	"testing"
	"time"
)

func day(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

func TestCatalogHistoryAndOverrides(t *testing.T) {
	c, err := NewCatalog([]Price{{Provider: "ds", Model: "deepseek-chat", Currency: "CNY", Input: 9, Output: 9, Effective: day("2026-01-01T00:00:00Z")}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, provider, model string
		prompt                int64
		at                    string
		want                  string // price ref, "" for none
		in, out               float64
	}{
		{"before any price", "x", "deepseek-chat", 10, "2024-01-01T00:00:00Z", "", 0, 0},
		{"price-war price", "x", "deepseek-chat", 10, "2024-06-01T00:00:00Z", "deepseek/deepseek-chat@2024-05-06", 1, 2},
		{"2025 peak", "x", "deepseek-chat", 10, "2025-03-01T04:00:00Z", "deepseek/deepseek-chat@2025-02-09", 2, 8},                          // 12:00 Beijing
		{"2025 off-peak", "x", "deepseek-chat", 10, "2025-03-01T20:00:00Z", "deepseek/deepseek-chat@2025-02-09+offpeak:deepseek2025", 1, 4}, // 04:00 Beijing
		{"override wins for its provider", "ds", "deepseek-chat", 10, "2026-06-01T04:00:00Z", "ds/deepseek-chat@2026-01-01", 9, 9},
		{"override not yet in force", "ds", "deepseek-chat", 10, "2025-12-01T04:00:00Z", "deepseek/deepseek-chat@2025-02-09", 2, 8},
		{"band by prompt tokens", "x", "qwen3-max", 50_000, "2026-06-01T00:00:00Z", "dashscope/qwen3-max@2026-05-01>32000", 4, 16},
		{"lowest band", "x", "qwen3-max", 1_000, "2026-06-01T00:00:00Z", "dashscope/qwen3-max@2026-05-01", 2.5, 10},
	}
	types := map[string]string{"x": "deepseek", "ds": "deepseek"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			typ := types[tc.provider]
			if tc.model == "qwen3-max" {
				typ = "dashscope"
			}
			p, ok := c.Lookup(tc.provider, typ, tc.model, tc.prompt, day(tc.at))
			if tc.want == "" {
				if ok {
					t.Errorf("priced as %s", p.Ref())
				}
				return
			}
			if !ok || p.Ref() != tc.want || p.Input != tc.in || p.Output != tc.out {
				t.Errorf("got %s (%v/%v), want %s (%v/%v)", p.Ref(), p.Input, p.Output, tc.want, tc.in, tc.out)
			}
		})
	}
}

func TestDeepSeek2026Peak(t *testing.T) {
	for at, off := range map[string]bool{
		"2026-09-01T02:00:00Z": false, // Tue 10:00 Beijing: peak
		"2026-09-01T05:00:00Z": true,  // Tue 13:00: lunch, off-peak
		"2026-09-05T02:00:00Z": true,  // Sat
		"2026-09-01T12:00:00Z": true,  // Tue 20:00
	} {
		if got := inWindow("offpeak:deepseek2026", day(at)); got != off {
			t.Errorf("%s: off-peak %v, want %v", at, got, off)
		}
	}
}

func TestCost(t *testing.T) {
	cached, write := 0.5, 3.75
	p := Price{Input: 3, Output: 15, CachedInput: &cached, CacheWrite: &write}
	// 1000 prompt (200 cached, 100 written) + 50 out, per 1M:
	// 700×3 + 200×0.5 + 100×3.75 + 50×15 = 2100 + 100 + 375 + 750 micro-units.
	if got := p.Cost(Tokens{Prompt: 1000, Cached: 200, CacheWrite: 100, Completion: 50}); got != 3325 {
		t.Errorf("cost = %d, want 3325", got)
	}
	plain := Price{Input: 1, Output: 2}
	if got := plain.Cost(Tokens{Prompt: 10, Cached: 4, Completion: 1}); got != 12 {
		t.Errorf("cached tokens without a cache price cost the input price: %d, want 12", got)
	}
}

func TestShippedCatalogParses(t *testing.T) {
	ps, err := ParseCatalog(shippedCatalog)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, p := range ps {
		types[p.Provider] = true
		if p.Source == "" || (p.Currency != "CNY" && p.Currency != "USD") {
			t.Errorf("%s: no source or currency", p.Ref())
		}
	}
	// Every hosted preset of the price war and the big three are priced.
	for _, typ := range []string{"openai", "anthropic", "gemini", "deepseek", "dashscope", "zhipu", "ark", "qianfan", "moonshot", "hunyuan", "minimax"} {
		if !types[typ] {
			t.Errorf("no prices for %s", typ)
		}
	}
}
