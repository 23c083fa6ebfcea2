package ledger

import (
	"math"
	"strings"
)

// MaxAttemptTokens bounds every token count one upstream attempt may report:
// above any context window or output limit offered today (2M), and far below
// what could overflow a cost. A count past it cannot be true: it is clamped
// to the bound and the record flagged.
const MaxAttemptTokens = 10_000_000

// MaxPrice bounds a price per 1M tokens or per image in its currency: past
// it a value is a typo, and it keeps every cost of a bounded usage far from
// overflowing int64.
const MaxPrice = 1_000_000

// maxMicros saturates money: a cost or a sum past it is held there, so an
// overflow can never wrap into a small or negative amount (a reservation of
// maxMicros is refused by every hard budget).
const maxMicros = math.MaxInt64 / 4

// Usage flags: what was wrong with the numbers an upstream reported.
const (
	FlagNegative     = "negative_usage"     // a count below zero, read as 0
	FlagOverBound    = "usage_over_bound"   // a count past MaxAttemptTokens (or images past those asked for)
	FlagCachedOver   = "cached_over_prompt" // cached + cache-write tokens past the prompt, cut to it
	FlagUnpricedFall = "fallback_price"     // no catalog price: billed at budgets.unpriced
)

// clampCount bounds one reported count to [0, limit], naming what it fixed.
func clampCount(v *int64, limit int64, flags map[string]bool) {
	switch {
	case *v < 0:
		*v, flags[FlagNegative] = 0, true
	case *v > limit:
		*v, flags[FlagOverBound] = limit, true
	}
}

// sanitize makes an entry's usage possible before it is priced: an upstream's
// numbers are checked before any arithmetic, so a negative count can never
// credit a budget and an absurd one can never bill billions. askedImages
// bounds the images counted (0: no image request).
func sanitize(e *Entry, askedImages int64) {
	flags := map[string]bool{}
	for _, v := range []*int64{&e.PromptTokens, &e.CompletionTokens, &e.CachedTokens, &e.CacheWriteTokens, &e.ReasoningTokens} {
		clampCount(v, MaxAttemptTokens, flags)
	}
	clampCount(&e.Images, askedImages, flags)
	if e.CachedTokens+e.CacheWriteTokens > e.PromptTokens {
		flags[FlagCachedOver] = true
		e.CachedTokens = min(e.CachedTokens, e.PromptTokens)
		e.CacheWriteTokens = min(e.CacheWriteTokens, e.PromptTokens-e.CachedTokens)
	}
	e.Flags = joinFlags(e.Flags, flags)
}

func joinFlags(have string, add map[string]bool) string {
	var out []string
	if have != "" {
		out = strings.Split(have, ",")
	}
	for _, f := range []string{FlagNegative, FlagOverBound, FlagCachedOver, FlagUnpricedFall} {
		if add[f] {
			out = append(out, f)
		}
	}
	return strings.Join(out, ",")
}

// micros turns an amount in micro-units computed in floating point into
// int64, never negative and saturated at maxMicros (NaN reads as the most).
func micros(v float64) int64 {
	switch {
	case v <= 0:
		return 0
	case !(v < maxMicros): // also NaN
		return maxMicros
	}
	return int64(math.Ceil(v - 1e-9))
}

// addMicros adds two amounts, saturating instead of overflowing.
func addMicros(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a > maxMicros-b {
		return maxMicros
	}
	return a + b
}

// validPrice reports whether a price is usable: finite, not negative, and
// under MaxPrice.
func validPrice(v float64) bool {
	return !math.IsNaN(v) && v >= 0 && v <= MaxPrice
}
