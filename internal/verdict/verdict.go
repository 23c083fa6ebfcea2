// Package verdict keeps each target's rolling baselines (connect, round
// trip, body transfer, time to first token by prompt size, decode rate) and
// judges a finished request against them: which layer, if any, made it slow
// or failed.
package verdict

import (
	"fmt"
	"math/bits"
	"slices"
	"sync"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/timing"
)

// canceled is the error kind of an attempt the gateway ended itself: a
// hedge's loser, or an attempt the client walked away from. It is no
// failure of the upstream.
var canceled = provider.KindCanceled.String()

// Thresholds a request must cross to be blamed on a layer.
const (
	// minSamples is how many observations a baseline needs before it is
	// trusted; until then only the absolute floors below apply.
	minSamples = 10
	// A time is "far above normal" past max(slowFactor × p95, p95 + floor).
	slowFactor   = 2.0
	networkFloor = 20 // ms
	ttftFloor    = 50 // ms
	gatewayFloor = 20 // ms
	// Without a baseline, these absolute times are slow anyway.
	networkAbsolute = 1000 // ms
	gatewayAbsolute = 100  // ms
	// Decode is slow below decodeFactor × the baseline's p50 tokens/s,
	// judged only on answers of at least minDecodeTokens.
	decodeFactor    = 0.5
	minDecodeTokens = 8
	// The client is to blame when the gateway waited on it this long, and
	// for at least clientShare of the request.
	clientFloor = 50 // ms
	clientShare = 0.2
	// A request answered after failed attempts is blamed on the upstream
	// when those attempts took at least this share of it.
	failedShare = 0.5
)

// window is a rolling set of the last windowSize observations, with its
// percentiles recomputed every refreshEvery observations, not per query.
type window struct {
	vals   [windowSize]float64
	n      int // observations so far
	sorted []float64
	dirty  int
}

const (
	windowSize   = 256
	refreshEvery = 16
)

func (w *window) add(v float64) {
	w.vals[w.n%windowSize] = v
	w.n++
	w.dirty++
}

func (w *window) count() int { return min(w.n, windowSize) }

// quantile is the q-quantile of the window (0 when empty).
func (w *window) quantile(q float64) float64 {
	c := w.count()
	if c == 0 {
		return 0
	}
	if w.sorted == nil || w.dirty >= refreshEvery || len(w.sorted) < min(c, minSamples) {
		w.sorted = append(w.sorted[:0], w.vals[:c]...)
		slices.Sort(w.sorted)
		w.dirty = 0
	}
	i := int(q * float64(len(w.sorted)-1))
	return w.sorted[i]
}

// promptBuckets split time to first token by prompt size: prefill grows with
// the prompt, so a long prompt is compared with long prompts.
const promptBuckets = 8

func promptBucket(tokens int) int {
	// <256, <512, <1k, <2k, <4k, <8k, <16k, more.
	b := bits.Len(uint(tokens)) - 8
	return max(0, min(b, promptBuckets-1))
}

type target struct {
	answers   int
	connect   window // fresh connections only
	roundTrip window // measured: a TCP handshake, or a head wait less reported processing
	transfer  window // a whole answer's body
	ttft      [promptBuckets]window
	whole     [promptBuckets]window // a whole answer's model time, by output size
	decode    window                // tokens/s
	inflight  window
}

// Judge keeps the baselines; safe for concurrent use.
type Judge struct {
	mu      sync.Mutex
	targets map[string]*target
	gateway window // the gateway's own time per request
}

// New makes an empty judge.
func New() *Judge { return &Judge{targets: map[string]*target{}} }

func (j *Judge) target(name string) *target {
	t := j.targets[name]
	if t == nil {
		t = &target{}
		j.targets[name] = t
	}
	return t
}

// Baseline is a target's normal, as status and diagnose show it.
type Baseline struct {
	Samples            int     `json:"samples"`
	ConnectP95         float64 `json:"connect_p95_ms"`
	RoundTripP50       float64 `json:"round_trip_p50_ms"`
	RoundTripP95       float64 `json:"round_trip_p95_ms"`
	TTFTP50            float64 `json:"ttft_p50_ms"`
	TTFTP95            float64 `json:"ttft_p95_ms"`
	TokensPerSecondP50 float64 `json:"tokens_per_second_p50"`
}

// Baseline reads a target's baseline (TTFT over all prompt sizes' most
// common bucket is not kept; the figures are for the smallest prompts seen).
func (j *Judge) Baseline(name string) Baseline {
	j.mu.Lock()
	defer j.mu.Unlock()
	t := j.targets[name]
	if t == nil {
		return Baseline{}
	}
	b := Baseline{Samples: t.answers, ConnectP95: t.connect.quantile(0.95),
		RoundTripP50: t.roundTrip.quantile(0.5), RoundTripP95: t.roundTrip.quantile(0.95), TokensPerSecondP50: t.decode.quantile(0.5)}
	for i := range t.ttft {
		if t.ttft[i].count() > 0 {
			b.TTFTP50, b.TTFTP95 = t.ttft[i].quantile(0.5), t.ttft[i].quantile(0.95)
			break
		}
	}
	return b
}

// slowPast is the time past which v is far above the window's normal.
func slowPast(w *window, floor float64) (limit float64, ok bool) {
	if w.count() < minSamples {
		return 0, false
	}
	p95 := w.quantile(0.95)
	return max(slowFactor*p95, p95+floor), true
}

// Judge gives a record its verdict against the baselines as they were, then
// adds the record to them. An attempt that measured no round trip of its
// own gets its target's usual one as the network's share of its wait for
// the head (the record is updated), so the rest counts as the upstream's.
func (j *Judge) Judge(rec *timing.Record) timing.Verdict {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := range rec.Attempts {
		a := &rec.Attempts[i]
		if t := j.targets[a.Target]; t != nil && a.Wire && a.HeadWait > 0 && a.RoundTripFrom == "" && t.roundTrip.count() > 0 {
			a.SplitHead(timing.Ms(t.roundTrip.quantile(0.5)), timing.RoundTripBaseline)
		}
	}
	v := j.judge(rec)
	j.observe(rec)
	return v
}

func (j *Judge) judge(rec *timing.Record) timing.Verdict {
	p := rec.Phases
	nums := map[string]float64{"total_ms": float64(p.Total)}
	verdict := func(kind, format string, args ...any) timing.Verdict {
		return timing.Verdict{Kind: kind, Reason: fmt.Sprintf(format, args...), Numbers: nums}
	}
	// The answer is the attempt the client got: the one that succeeded,
	// else one it left while reading (cancelled, with a success status).
	var answer, failure, left *timing.AttemptRecord
	var failed float64
	for i := range rec.Attempts {
		switch a := &rec.Attempts[i]; a.Error {
		case "":
			answer = a
		case canceled:
			left = a
		default:
			failure = a
			failed += float64(a.EndAt - a.StartAt)
		}
	}
	if answer == nil && rec.Status < 400 {
		answer = left
	}
	if answer == nil && failure != nil && rec.Status >= 400 {
		nums["attempts"] = float64(len(rec.Attempts))
		return verdict(timing.VerdictUpstreamError, "no attempt succeeded: %d attempts, the last failure on %s was %s",
			len(rec.Attempts), failure.Target, failure.Error)
	}
	if answer == nil && left != nil {
		return verdict(timing.VerdictClient, "the client went away after %.0f ms, before any answer", float64(p.Total))
	}
	if failed > 0 && failed >= failedShare*float64(p.Total) {
		nums["failed_attempts_ms"] = failed
		return verdict(timing.VerdictUpstreamError, "answered after failed attempts that took %.0f ms of %.0f ms", failed, float64(p.Total))
	}
	if float64(p.Client) >= clientFloor && float64(p.Client) >= clientShare*float64(p.Total) {
		nums["client_ms"] = float64(p.Client)
		return verdict(timing.VerdictClient, "the client read slowly: the gateway waited %.0f ms of %.0f ms to write to it", float64(p.Client), float64(p.Total))
	}
	if answer != nil {
		t := j.target(answer.Target)
		if v, ok := j.judgeAttempt(t, answer, nums); ok {
			return v
		}
	}
	gw := float64(p.Gateway + p.Auth + p.Route)
	nums["gateway_ms"] = gw
	if limit, ok := slowPast(&j.gateway, gatewayFloor); (ok && gw > limit) || gw > gatewayAbsolute {
		return verdict(timing.VerdictGateway, "the gateway's own work took %.1f ms (normal below %.1f ms)", gw, max(limit, float64(gatewayFloor)))
	}
	if rec.Status >= 400 && len(rec.Attempts) == 0 {
		return verdict(timing.VerdictRefused, "refused with %d (%s) before any upstream call", rec.Status, rec.ErrorKind)
	}
	return verdict(timing.VerdictOK, "every phase within its target's normal")
}

func (j *Judge) judgeAttempt(t *target, a *timing.AttemptRecord, nums map[string]float64) (timing.Verdict, bool) {
	verdict := func(kind, format string, args ...any) (timing.Verdict, bool) {
		return timing.Verdict{Kind: kind, Reason: fmt.Sprintf(format, args...), Numbers: nums}, true
	}
	if a.Wire {
		setup := float64(a.DNS + a.Connect + a.TLS)
		if !a.Reused {
			nums["connect_ms"] = setup
			if limit, ok := slowPast(&t.connect, networkFloor); (ok && setup > limit) || setup > networkAbsolute {
				nums["connect_limit_ms"] = limit
				return verdict(timing.VerdictNetwork, "connecting to %s took %.1f ms (normal below %.1f ms) while it answered", a.Target, setup, limit)
			}
		}
		nums["network_ms"] = float64(a.Network)
		// Only a round trip measured against the upstream's own account of
		// its work can be blamed: a head held back by a busy or prefilling
		// model is not a slow network.
		if a.RoundTripFrom == timing.RoundTripProcessing {
			rt := float64(a.RoundTrip)
			nums["round_trip_ms"] = rt
			if limit, ok := slowPast(&t.roundTrip, networkFloor); (ok && rt > limit) || rt > networkAbsolute {
				nums["round_trip_limit_ms"] = limit
				return verdict(timing.VerdictNetwork, "%s's head came %.1f ms after the request beyond the %.0f ms it says it worked (normal round trip below %.1f ms)", a.Target, rt, float64(a.Processing), limit)
			}
		}
		if a.Transfer > 0 {
			tr := float64(a.Transfer)
			nums["transfer_ms"] = tr
			if limit, ok := slowPast(&t.transfer, networkFloor); (ok && tr > limit) || tr > networkAbsolute {
				nums["transfer_limit_ms"] = limit
				return verdict(timing.VerdictNetwork, "%s's answer took %.1f ms to arrive after its first byte (normal below %.1f ms)", a.Target, tr, limit)
			}
		}
	}
	if a.TTFT > 0 {
		ttft := float64(a.TTFT)
		nums["ttft_ms"] = ttft
		nums["prompt_tokens"] = float64(a.PromptTokens)
		w := &t.ttft[promptBucket(a.PromptTokens)]
		if limit, ok := slowPast(w, ttftFloor); ok && ttft > limit {
			nums["ttft_limit_ms"] = limit
			nums["in_flight"] = float64(a.InFlight)
			if queued(t, a) {
				return verdict(timing.VerdictQueue, "first token after %.0f ms (normal below %.0f ms for %d prompt tokens) with %d calls in flight on %s, above its normal", ttft, limit, a.PromptTokens, a.InFlight, a.Target)
			}
			return verdict(timing.VerdictPrefill, "first token after %.0f ms, normal below %.0f ms for %d prompt tokens on %s", ttft, limit, a.PromptTokens, a.Target)
		}
	}
	if a.TTFT == 0 && a.Model > 0 {
		model := float64(a.Model)
		nums["model_ms"] = model
		nums["output_tokens"] = float64(a.OutputTokens)
		if limit, ok := slowPast(&t.whole[promptBucket(a.OutputTokens)], ttftFloor); ok && model > limit {
			nums["model_limit_ms"] = limit
			nums["in_flight"] = float64(a.InFlight)
			if queued(t, a) {
				return verdict(timing.VerdictQueue, "the whole answer took %.0f ms (normal below %.0f ms) with %d calls in flight on %s, above its normal", model, limit, a.InFlight, a.Target)
			}
			// A whole answer cannot show which phase was slow: blame the one
			// that dominates such an answer's normal time.
			kind := j.dominantPhase(t, a)
			return verdict(kind, "the whole answer took %.0f ms, normal below %.0f ms for %d output tokens on %s (%s dominates such answers; stream to see the phases)", model, limit, a.OutputTokens, a.Target, kind)
		}
	}
	if a.TokensPerSecond > 0 && a.OutputTokens >= minDecodeTokens {
		nums["tokens_per_second"] = a.TokensPerSecond
		if t.decode.count() >= minSamples {
			normal := t.decode.quantile(0.5)
			nums["tokens_per_second_p50"] = normal
			if a.TokensPerSecond < decodeFactor*normal {
				return verdict(timing.VerdictDecode, "decoded %.1f tokens/s, normal %.1f on %s", a.TokensPerSecond, normal, a.Target)
			}
		}
	}
	return timing.Verdict{}, false
}

// dominantPhase is the phase that takes most of a whole answer's normal
// time: the decode of its output at the target's median rate against the
// median time to first token for its prompt; without streams to learn
// from, decode for answers of 64 tokens or more.
func (j *Judge) dominantPhase(t *target, a *timing.AttemptRecord) string {
	ttft := &t.ttft[promptBucket(a.PromptTokens)]
	if t.decode.count() >= minSamples && ttft.count() >= minSamples {
		if float64(a.OutputTokens)/t.decode.quantile(0.5)*1000 > ttft.quantile(0.5) {
			return timing.VerdictDecode
		}
		return timing.VerdictPrefill
	}
	if a.OutputTokens >= 64 {
		return timing.VerdictDecode
	}
	return timing.VerdictPrefill
}

// queued: the gateway had more calls in flight on the target than usual.
func queued(t *target, a *timing.AttemptRecord) bool {
	q, ok := slowPast(&t.inflight, 1)
	return ok && float64(a.InFlight) > q
}

// observe adds a record's figures to the baselines.
func (j *Judge) observe(rec *timing.Record) {
	j.gateway.add(float64(rec.Phases.Gateway + rec.Phases.Auth + rec.Phases.Route))
	for i := range rec.Attempts {
		a := &rec.Attempts[i]
		if a.Error != "" {
			continue
		}
		t := j.target(a.Target)
		t.answers++
		t.inflight.add(float64(a.InFlight))
		if a.Wire {
			if !a.Reused {
				t.connect.add(float64(a.DNS + a.Connect + a.TLS))
			}
			if a.RoundTripFrom == timing.RoundTripProcessing || a.RoundTripFrom == timing.RoundTripConnect {
				t.roundTrip.add(float64(a.RoundTrip))
			}
			if a.FirstTokenAt == 0 && a.FirstByteAt > 0 {
				t.transfer.add(float64(a.Transfer))
			}
		}
		if a.TTFT > 0 {
			t.ttft[promptBucket(a.PromptTokens)].add(float64(a.TTFT))
		}
		if a.TTFT == 0 && a.Model > 0 {
			t.whole[promptBucket(a.OutputTokens)].add(float64(a.Model))
		}
		if a.TokensPerSecond > 0 && a.OutputTokens >= minDecodeTokens {
			t.decode.add(a.TokensPerSecond)
		}
	}
}
