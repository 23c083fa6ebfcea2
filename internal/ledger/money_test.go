package ledger

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSanitize: every count an upstream reports is made possible before it
// is priced, and what was changed is flagged.
func TestSanitize(t *testing.T) {
	for _, c := range []struct {
		name       string
		in, want   Entry
		askedImage int64
	}{
		{"plain", Entry{PromptTokens: 10, CompletionTokens: 5, CachedTokens: 4}, Entry{PromptTokens: 10, CompletionTokens: 5, CachedTokens: 4}, 0},
		{"negative", Entry{PromptTokens: -10, CompletionTokens: -1 << 40, ReasoningTokens: -1}, Entry{Flags: FlagNegative}, 0},
		{"over the bound", Entry{PromptTokens: 5, CompletionTokens: 1e15}, Entry{PromptTokens: 5, CompletionTokens: MaxAttemptTokens, Flags: FlagOverBound}, 0},
		{"both", Entry{PromptTokens: math.MaxInt64, CompletionTokens: -1}, Entry{PromptTokens: MaxAttemptTokens, Flags: FlagNegative + "," + FlagOverBound}, 0},
		{"cached past the prompt", Entry{PromptTokens: 10, CachedTokens: 8, CacheWriteTokens: 8}, Entry{PromptTokens: 10, CachedTokens: 8, CacheWriteTokens: 2, Flags: FlagCachedOver}, 0},
		{"more images than asked", Entry{Images: 7}, Entry{Images: 2, Flags: FlagOverBound}, 2},
		{"images on a chat request", Entry{Images: 1}, Entry{Flags: FlagOverBound}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.in
			sanitize(&got, c.askedImage)
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestCostNeverWrapsOrCredits: costs of absurd or negative counts saturate
// or read as zero; money sums saturate instead of overflowing.
func TestCostNeverWrapsOrCredits(t *testing.T) {
	p := Price{Input: MaxPrice, Output: MaxPrice}
	for _, c := range []struct {
		name   string
		tokens Tokens
		want   int64
	}{
		{"negative", Tokens{Prompt: -5, Completion: -1 << 62}, 0},
		{"huge", Tokens{Prompt: math.MaxInt64, Completion: math.MaxInt64}, maxMicros},
		{"bounded usage at the dearest price fits", Tokens{Prompt: MaxAttemptTokens, Completion: MaxAttemptTokens}, 2 * MaxAttemptTokens * MaxPrice},
	} {
		if got := p.Cost(c.tokens); got != c.want {
			t.Errorf("%s: cost %d, want %d", c.name, got, c.want)
		}
	}
	if got := addMicros(maxMicros, maxMicros); got != maxMicros {
		t.Errorf("saturating add: %d", got)
	}
	if got := addMicros(10, -30); got != 10 {
		t.Errorf("adding a negative amount: %d, want 10", got)
	}
	if got := (&Meter{USDToCNY: 7.2}).convert(money{"USD": maxMicros}, "CNY"); got != maxMicros {
		t.Errorf("conversion overflowed: %d", got)
	}
}

// TestPricesMustBeFinite: a NaN, infinite, negative or absurd price is
// refused wherever prices come from (overrides, the shipped files).
func TestPricesMustBeFinite(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), -1, MaxPrice + 1} {
		if _, err := NewCatalog([]Price{{Provider: "p", Model: "m", Currency: "CNY", Input: 1, Output: v}}); err == nil {
			t.Errorf("override with output %v accepted", v)
		}
	}
	head := "provider,model,currency,effective,input,cached_input,cache_write,output,batch_input,batch_output,band_above,when,source\n"
	if _, err := ParseCatalog(head + "p,m,CNY,2024-01-01,NaN,,,1,,,,,x\n"); err == nil {
		t.Error("a NaN catalog price parsed")
	}
	if _, err := ParseImageCatalog("provider,model,currency,effective,quality,size,per_image,source\np,m,USD,2024-01-01,,,Inf,x\n"); err == nil {
		t.Error("an infinite image price parsed")
	}
}

// TestImageLookup: size and quality select the row; unset takes the
// documented default where the model has it, "auto" the dearest row; a
// value no row has is unpriced rather than guessed.
func TestImageLookup(t *testing.T) {
	c, err := NewCatalog(nil)
	if err != nil {
		t.Fatal(err)
	}
	at := day("2026-08-01T00:00:00Z")
	for _, tc := range []struct {
		model, quality, size string
		want                 float64 // 0: unpriced
	}{
		{"dall-e-3", "hd", "1792x1024", 0.12},
		{"dall-e-3", "", "", 0.04},
		{"dall-e-3", "auto", "", 0.08},
		{"dall-e-3", "", "auto", 0.08},
		{"dall-e-2", "", "512x512", 0.018},
		{"gpt-image-1", "", "1024x1024", 0.167},
		{"gpt-image-1", "low", "auto", 0.016},
		{"gpt-image-1", "medium", "1536x1024", 0.063},
		{"gpt-image-1-mini", "high", "1024x1024", 0},
		{"dall-e-3", "hd", "640x480", 0},
		{"no-such-model", "", "", 0},
	} {
		p, ok := c.ImageLookup("openai", tc.model, tc.quality, tc.size, at)
		if got := map[bool]float64{true: p.PerImage}[ok]; got != tc.want {
			t.Errorf("%s %q %q: $%v (ok %v), want $%v", tc.model, tc.quality, tc.size, p.PerImage, ok, tc.want)
		}
	}
	if _, ok := c.ImageLookup("openai", "dall-e-3", "", "", day("2020-01-01T00:00:00Z")); ok {
		t.Error("priced before the entry's effective date")
	}
	if p, ok := c.ImageLookup("sim", "fast", "hd", "4096x4096", at); !ok || p.Cost(3) != 30_000 {
		t.Errorf("the sim's demo price: %+v %v", p, ok)
	}
}

func TestPeriodEnd(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 0, 0, time.FixedZone("CST", 8*3600)) // 15:59 UTC
	for _, c := range []struct {
		period string
		want   time.Time
		ok     bool
	}{
		{PeriodDay, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{PeriodMonth, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{PeriodTotal, time.Time{}, false},
	} {
		if got, ok := PeriodEnd(c.period, at); !got.Equal(c.want) || ok != c.ok {
			t.Errorf("%s: %v %v, want %v %v", c.period, got, ok, c.want, c.ok)
		}
	}
}
