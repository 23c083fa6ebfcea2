package ledger

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStoredPrices(t *testing.T) {
	c, err := NewCatalog([]Price{{Provider: "ds", Model: "deepseek-chat", Currency: "CNY", Input: 9, Output: 9, Effective: day("2026-01-01T00:00:00Z")}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetStored([]Price{
		{Provider: "ds", Model: "deepseek-chat", Currency: "CNY", Input: 5, Output: 5, Effective: day("2025-06-01T00:00:00Z")},
		{Provider: "ds", Model: "deepseek-chat", Currency: "CNY", Input: 7, Output: 7, Effective: day("2026-03-01T12:30:00Z")},
		{Provider: "ds", Model: "deepseek-chat", Currency: "CNY", Input: 8, Output: 8, Effective: day("2026-01-01T00:00:00Z")},
		{Provider: "sim", Model: "nano", Currency: "USD", Input: 50, Output: 60, Effective: day("2026-05-01T10:00:00Z")},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, provider, typ, model string
		at                         string
		want                       string // price ref, "" for none
		in                         float64
	}{
		{"stored before any override", "ds", "deepseek", "deepseek-chat", "2025-07-01T04:00:00Z", "ds/deepseek-chat@2025-06-01", 5},
		{"stored on the override's date wins the tie", "ds", "deepseek", "deepseek-chat", "2026-02-01T04:00:00Z", "ds/deepseek-chat@2026-01-01", 8},
		{"stored from an instant, not before", "ds", "deepseek", "deepseek-chat", "2026-03-01T12:29:59Z", "ds/deepseek-chat@2026-01-01", 8},
		{"stored from an instant, at it", "ds", "deepseek", "deepseek-chat", "2026-03-01T12:30:00Z", "ds/deepseek-chat@2026-03-01T12:30:00Z", 7},
		{"shipped until a stored price starts", "sim", "sim", "nano", "2026-05-01T09:59:00Z", "sim/nano@2024-01-01", 0.05},
		{"stored replaces shipped from its start", "sim", "sim", "nano", "2026-05-01T10:00:00Z", "sim/nano@2026-05-01T10:00:00Z", 50},
		{"by provider name, not type", "other", "sim", "nano", "2026-06-01T00:00:00Z", "sim/nano@2024-01-01", 0.05},
	}
	for _, tc := range cases {
		p, ok := c.Lookup(tc.provider, tc.typ, tc.model, 10, day(tc.at))
		got := ""
		if ok {
			got = p.Ref()
		}
		if d := cmp.Diff(tc.want, got); d != "" || (ok && p.Input != tc.in) {
			t.Errorf("%s: ref (-want +got):\n%s input %v, want %v", tc.name, d, p.Input, tc.in)
		}
	}
	if p, _ := c.Lookup("sim", "sim", "nano", 10, day("2026-06-01T00:00:00Z")); p.Source != SourceStored {
		t.Errorf("source = %q, want %q", p.Source, SourceStored)
	}

	// A bad entry changes nothing.
	for _, v := range []float64{math.NaN(), math.Inf(1), -1, MaxPrice + 1} {
		if err := c.SetStored([]Price{{Provider: "sim", Model: "nano", Currency: "USD", Input: 1, Output: v}}); err == nil {
			t.Errorf("output %v accepted", v)
		}
	}
	if p, _ := c.Lookup("sim", "sim", "nano", 10, day("2026-06-01T00:00:00Z")); p.Input != 50 {
		t.Errorf("after rejected sets the stored price is %v, want 50", p.Input)
	}
	n := 0
	for _, p := range c.All() {
		if p.Source == SourceStored {
			n++
		}
	}
	if n != 4 {
		t.Errorf("All lists %d stored prices, want 4", n)
	}
}
