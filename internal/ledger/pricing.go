package ledger

import (
	"fmt"
	"strconv"
	"time"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// Fallback is the opt-in price of models the catalog lacks (budgets.unpriced):
// per 1M tokens, and per image.
type Fallback struct {
	Currency             string
	Input, Output, Image float64
}

// fallbackRef names the fallback in ledger records.
const fallbackRef = "budgets.unpriced"

// quote is a price applied: the cost, its currency, which entry priced it,
// and whether that entry is the catalog's (not the fallback).
type quote struct {
	cost     int64
	currency string
	ref      string
	catalog  bool
}

// quote prices usage on a target: per image for an image request, else per
// token; from the catalog, else the fallback. ok is false when neither has
// a price.
func (m *Meter) quote(t router.Target, tokens Tokens, images gateway.Images, imageRequest bool, at time.Time) (quote, bool) {
	return m.quoteFor(t, tokens, images, imageRequest, false, at)
}

// quoteFor is quote, at the catalog's batch price where one exists when
// batch is set (a Batch API item).
func (m *Meter) quoteFor(t router.Target, tokens Tokens, images gateway.Images, imageRequest, batch bool, at time.Time) (quote, bool) {
	typ := m.ProviderTypes[t.Provider]
	if imageRequest {
		if p, ok := m.Catalog.ImageLookup(typ, t.Model, images.Quality, images.Size, at); ok {
			return quote{p.Cost(images.N), p.Currency, p.Ref(), true}, true
		}
		if f := m.Unpriced; f != nil {
			return quote{micros(float64(max(images.N, 0)) * f.Image * 1e6), f.Currency, fallbackRef, false}, true
		}
		return quote{}, false
	}
	if p, ok := m.Catalog.Lookup(t.Provider, typ, t.Model, tokens.Prompt, at); ok {
		if batch {
			p = p.ForBatch()
		}
		return quote{p.Cost(tokens), p.Currency, p.Ref(), true}, true
	}
	if f := m.Unpriced; f != nil {
		fp := Price{Input: f.Input, Output: f.Output}
		return quote{fp.Cost(tokens), f.Currency, fallbackRef, false}, true
	}
	return quote{}, false
}

// unpriced names the first target of a plan with no price, or "".
func (m *Meter) unpricedTarget(est gateway.Estimate, at time.Time) string {
	for _, t := range est.Plan {
		if _, ok := m.quote(t, Tokens{Prompt: est.PromptTokens}, est.Images, est.Images.N > 0, at); !ok {
			return t.String()
		}
	}
	return ""
}

// PriceUnknown refuses a request that a hard budget cannot bound: a target
// of its plan has no price, so its cost could not be held or counted.
func PriceUnknown(target string) *provider.Error {
	return &provider.Error{Kind: provider.KindForbidden, Code: "price_unknown", Param: "model",
		Message: fmt.Sprintf("%s has no price, so this key's hard budget cannot bound it; the operator can add one under prices: or set budgets.unpriced", target)}
}

// entry makes an attempt's ledger record: its usage checked and clamped
// before any arithmetic (sanitize), then priced.
func (m *Meter) entry(call *gateway.Call, est gateway.Estimate, a gateway.Attempt, at time.Time) Entry {
	u := Entry{RequestID: call.RequestID, ClientRequestID: call.ClientRequestID, Purpose: call.Purpose, Attempt: a.Number, CreatedAt: at,
		KeyID: call.KeyID, ProjectID: call.ProjectID, Provider: a.Target.Provider, Model: a.Target.Model,
		PromptTokens: int64(a.Usage.PromptTokens), CompletionTokens: int64(a.Usage.CompletionTokens),
		CachedTokens: int64(a.Usage.CachedTokens()), ReasoningTokens: int64(a.Usage.ReasoningTokens()), Images: a.Images.N,
		Estimated: a.Estimated, Status: a.Status, Latency: a.Latency}
	if d := a.Usage.PromptTokensDetails; d != nil {
		u.CacheWriteTokens = int64(d.CacheWriteTokens)
	}
	sanitize(&u, est.Images.N)
	tokens := Tokens{Prompt: u.PromptTokens, Completion: u.CompletionTokens, Cached: u.CachedTokens, CacheWrite: u.CacheWriteTokens}
	images := gateway.Images{N: u.Images, Size: a.Images.Size, Quality: a.Images.Quality}
	q, ok := m.quoteFor(a.Target, tokens, images, est.Images.N > 0, call.Purpose == gateway.PurposeBatch, at)
	if !ok {
		u.Currency = "CNY"
		return u
	}
	u.Priced, u.Currency, u.PriceRef, u.Cost = q.catalog, q.currency, q.ref, q.cost
	if !q.catalog {
		u.Flags = joinFlags(u.Flags, map[string]bool{FlagUnpricedFall: true})
	}
	return u
}

// refusal explains a budget that cannot hold a request's worst case: spent,
// or not enough left for this request, or the rest held by requests in
// flight. Retry-After is true: the period's end when the request would then
// fit, none otherwise (a total budget renews only when raised).
func refusal(b Budget, e *BudgetExceededError, now time.Time) *provider.Error {
	err := &provider.Error{Kind: provider.KindQuotaExceeded, Code: "budget_exceeded", RetryAfter: provider.NoRetry}
	next, renews := PeriodEnd(b.Period, now)
	left := max(e.Amount-e.Spent, 0)
	switch {
	case e.Spent >= e.Amount:
		err.Message = fmt.Sprintf("the %s's budget is spent (%s of %s)", b.Scope, money6(e.Spent, b.Currency), money6(e.Amount, b.Currency))
	case e.Want > left:
		err.Message = fmt.Sprintf("this request's worst case (%s) does not fit in what is left of the %s's budget (%s of %s); lower max_tokens or raise the budget",
			money6(e.Want, b.Currency), b.Scope, money6(left, b.Currency), money6(e.Amount, b.Currency))
		renews = renews && e.Want <= e.Amount
	default:
		return &provider.Error{Kind: provider.KindQuotaExceeded, Code: "budget_exceeded", RetryAfter: provider.NoRetry,
			Message: fmt.Sprintf("this request's worst case (%s) does not fit in what is left of the %s's budget (%s) while requests in flight hold %s; retry when they finish",
				money6(e.Want, b.Currency), b.Scope, money6(left, b.Currency), money6(e.Reserved, b.Currency))}
	}
	switch {
	case renews:
		err.RetryAfter = next.Sub(now)
		err.Message += "; it renews at " + next.Format(time.RFC3339)
	case b.Period == PeriodTotal:
		err.Message += "; a total budget renews only when raised"
	default:
		err.Message += "; it is more than the whole budget"
	}
	return err
}

// money6 shows micro-units in currency units, exactly.
func money6(v int64, currency string) string {
	return strconv.FormatFloat(float64(v)/1e6, 'f', -1, 64) + " " + currency
}

// PeriodEnd is when the budget window holding t ends; false for a total
// budget, whose one window never ends.
func PeriodEnd(period string, t time.Time) (time.Time, bool) {
	t = t.UTC()
	switch period {
	case PeriodDay:
		return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC), true
	case PeriodMonth:
		return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC), true
	}
	return time.Time{}, false
}
