package router

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Forecast is what a target would give a request sent to it now, as the
// live load of self-hosted servers predicts it (internal/load).
type Forecast struct {
	// SelfHosted is false for a target whose load is not read (a hosted
	// API): balance: load bursts to those when no self-hosted one can.
	SelfHosted bool
	// TTFT is the predicted time to first token: the queue ahead of the
	// request drained at the server's learned pace, plus its learned
	// time to first token under load.
	TTFT time.Duration
	// Margin is the forecast's recent error (90th percentile of actual
	// less predicted): a target must meet the SLO with it added.
	Margin time.Duration
	// CostPerHour is the server's declared cost (CNY); CostPerMTokens is
	// that cost over the output tokens/s it has shown, per 1M tokens, 0
	// until it has shown any.
	CostPerHour, CostPerMTokens float64
}

// Forecaster forecasts a target's service now.
type Forecaster interface {
	Forecast(t Target) Forecast
}

// Balanced is balance: load: among the self-hosted targets predicted to
// meet the SLO now, the lowest cost per token goes first; when none can,
// the route's hosted targets (a burst to the cloud), else the target with
// the shortest predicted wait. A target meets the SLO when predicted
// within sloHeadroom of it: room for the forecast's error (a burst that
// arrives between scrapes, a slower answer than learned).
type Balanced struct {
	SLO   time.Duration
	Loads Forecaster
}

// sloHeadroom is the share of the SLO a forecast may use.
const sloHeadroom = 0.85

func (b *Balanced) Order(req *Request, ts []Target) []Target {
	out, _ := b.Explain(req, ts)
	return out
}

type forecast struct {
	t Target
	f Forecast
}

// Explain orders ts and says why, for the request record.
func (b *Balanced) Explain(_ *Request, ts []Target) ([]Target, string) {
	var meet, miss, hosted []forecast
	for _, t := range ts {
		f := b.Loads.Forecast(t)
		switch {
		case !f.SelfHosted:
			hosted = append(hosted, forecast{t, f})
		case f.TTFT+f.Margin <= time.Duration(float64(b.SLO)*sloHeadroom):
			meet = append(meet, forecast{t, f})
		default:
			miss = append(miss, forecast{t, f})
		}
	}
	byWait := func(a, b forecast) int { return cmpDuration(a.f.TTFT, b.f.TTFT) }
	slices.SortStableFunc(miss, byWait)
	perToken := !slices.ContainsFunc(meet, func(f forecast) bool { return f.f.CostPerMTokens <= 0 })
	slices.SortStableFunc(meet, func(a, b forecast) int {
		ca, cb := a.f.CostPerHour, b.f.CostPerHour
		if perToken {
			ca, cb = a.f.CostPerMTokens, b.f.CostPerMTokens
		}
		switch {
		case ca < cb:
			return -1
		case ca > cb:
			return 1
		}
		return byWait(a, b)
	})
	out := make([]Target, 0, len(ts))
	add := func(fs []forecast) {
		for _, f := range fs {
			out = append(out, f.t)
		}
	}
	slo := b.SLO.String()
	switch {
	case len(meet) > 0:
		add(meet)
		add(miss)
		add(hosted)
		first := meet[0]
		cost := fmt.Sprintf("%.2f CNY/hour", first.f.CostPerHour)
		if perToken {
			cost = fmt.Sprintf("%.2f CNY per 1M tokens", first.f.CostPerMTokens)
		}
		return out, fmt.Sprintf("balance: load: %s predicted to first token in %s, within the %s SLO, cheapest at %s%s",
			first.t, round(first.f.TTFT+first.f.Margin), slo, cost, others(append(meet[1:], miss...)))
	case len(hosted) > 0:
		add(hosted)
		add(miss)
		return out, fmt.Sprintf("balance: load: no self-hosted target predicted within the %s SLO%s: burst to %s",
			slo, others(miss), hosted[0].t)
	default:
		add(miss)
		return out, fmt.Sprintf("balance: load: no target predicted within the %s SLO%s: least loaded first",
			slo, others(miss))
	}
}

// others lists the other targets' forecasts, for the reason.
func others(fs []forecast) string {
	if len(fs) == 0 {
		return ""
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%s %s", f.t, round(f.f.TTFT+f.f.Margin))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func cmpDuration(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
