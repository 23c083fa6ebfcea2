package verdict

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/timing"
)

// normal is a healthy streamed request on target p/m: a 1 ms round trip
// (measured against the upstream's reported processing), 50 ms to the
// first token, 100 tokens/s, 0.2 ms of gateway time.
func normal() timing.Record {
	return timing.Record{Status: 200, Stream: true,
		Phases: timing.Phases{Auth: 0.05, Route: 0.05, Upstream: 200, Gateway: 0.1, Total: 200.2},
		Attempts: []timing.AttemptRecord{{Number: 1, Target: "p/m", Wire: true, Reused: true, InFlight: 1,
			StartAt: 0.1, EndAt: 200.1, WrittenAt: 0.1, FirstByteAt: 1.11, FirstTokenAt: 51.1, LastTokenAt: 200.1,
			HeadWait: 1.01, Processing: 0.01, RoundTrip: 1, RoundTripFrom: timing.RoundTripProcessing, Network: 1,
			TTFT: 50, Decode: 150, PromptTokens: 100, OutputTokens: 16, TokensPerSecond: 100}}}
}

// whole is normal's answer not streamed: 200 ms of reported model time,
// its body read in 0.5 ms.
func whole() timing.Record {
	r := normal()
	r.Stream = false
	a := &r.Attempts[0]
	a.FirstByteAt, a.FirstTokenAt, a.LastTokenAt, a.EndAt = 201.11, 0, 0, 201.61
	a.HeadWait, a.Processing = 201.01, 200
	a.TTFT, a.Decode, a.TokensPerSecond, a.Model, a.Transfer = 0, 0, 0, 200, 0.5
	return r
}

// headWithFirstToken: an upstream that holds its head until its first
// token, ttft ms after the request, as the timeline records it.
func headWithFirstToken(r *timing.Record, ttft timing.Ms, from string) {
	a := &r.Attempts[0]
	a.FirstByteAt, a.FirstTokenAt = a.WrittenAt+ttft, a.WrittenAt+ttft
	a.HeadWait, a.TTFT = ttft, ttft
	a.Processing, a.RoundTrip, a.RoundTripFrom, a.Network = 0, 0, from, 0
	if from == timing.RoundTripProcessing {
		a.Processing, a.RoundTrip, a.Network, a.TTFT = ttft-1, 1, 1, ttft-1
	}
}

// canceledLoser adds a hedge's primary, cancelled by the gateway when the
// answering attempt won: it ran the whole request.
func canceledLoser(r *timing.Record) {
	loser := r.Attempts[0]
	loser.Error, loser.FirstByteAt, loser.FirstTokenAt, loser.LastTokenAt, loser.TTFT, loser.Decode = "canceled", 0, 0, 0, 0, 0
	loser.Target, loser.EndAt = "q/m", r.Phases.Total
	r.Attempts[0].Number = 2
	r.Attempts = []timing.AttemptRecord{loser, r.Attempts[0]}
}

func TestVerdicts(t *testing.T) {
	tests := []struct {
		name   string
		change func(*timing.Record)
		want   string
	}{
		{"healthy", func(*timing.Record) {}, timing.VerdictOK},
		{"slow network: the head 300 ms past the reported processing", func(r *timing.Record) {
			a := &r.Attempts[0]
			a.HeadWait, a.RoundTrip, a.Network, a.FirstByteAt = 300.01, 300, 300, 300.11
		}, timing.VerdictNetwork},
		{"slow network on a whole answer", func(r *timing.Record) {
			*r = whole()
			a := &r.Attempts[0]
			a.HeadWait, a.RoundTrip, a.Network = 500, 300, 300
		}, timing.VerdictNetwork},
		{"a slow body transfer", func(r *timing.Record) {
			*r = whole()
			r.Attempts[0].Transfer = 300
		}, timing.VerdictNetwork},
		// The head held back by a prefilling model is the model's time.
		{"head with the first token, processing reported", func(r *timing.Record) {
			headWithFirstToken(r, 600, timing.RoundTripProcessing)
		}, timing.VerdictPrefill},
		{"head with the first token, no processing header", func(r *timing.Record) {
			headWithFirstToken(r, 600, "")
		}, timing.VerdictPrefill},
		{"head with the first token, busy", func(r *timing.Record) {
			headWithFirstToken(r, 600, "")
			r.Attempts[0].InFlight = 40
		}, timing.VerdictQueue},
		// Every baseline call reused its connection: no connect baseline, so
		// only the absolute limit (1 s) applies.
		{"a new connection, a little slow", func(r *timing.Record) { r.Attempts[0].Reused, r.Attempts[0].Connect = false, 400 }, timing.VerdictOK},
		{"a new connection, very slow", func(r *timing.Record) { r.Attempts[0].Reused, r.Attempts[0].Connect = false, 1500 }, timing.VerdictNetwork},
		{"slow prefill", func(r *timing.Record) { r.Attempts[0].TTFT = 600 }, timing.VerdictPrefill},
		{"queued", func(r *timing.Record) { r.Attempts[0].TTFT, r.Attempts[0].InFlight = 600, 40 }, timing.VerdictQueue},
		{"a long prompt may take longer", func(r *timing.Record) { r.Attempts[0].TTFT, r.Attempts[0].PromptTokens = 600, 20000 }, timing.VerdictOK},
		{"slow decode", func(r *timing.Record) { r.Attempts[0].TokensPerSecond = 20 }, timing.VerdictDecode},
		{"short answers are not judged on decode", func(r *timing.Record) {
			r.Attempts[0].TokensPerSecond, r.Attempts[0].OutputTokens = 20, 3
		}, timing.VerdictOK},
		{"slow client", func(r *timing.Record) { r.Phases.Client, r.Phases.Total = 150, 350 }, timing.VerdictClient},
		{"slow gateway", func(r *timing.Record) { r.Phases.Gateway = 120 }, timing.VerdictGateway},
		{"upstream failed", func(r *timing.Record) {
			r.Status, r.Attempts[0].Error = 502, "upstream_error"
		}, timing.VerdictUpstreamError},
		{"answered after a long failed attempt", func(r *timing.Record) {
			failed := r.Attempts[0]
			failed.Error, failed.EndAt = "timeout", 3000
			ok := r.Attempts[0]
			ok.Number, ok.StartAt, ok.EndAt = 2, 3000, 3200
			r.Attempts, r.Phases.Total = []timing.AttemptRecord{failed, ok}, 3200
		}, timing.VerdictUpstreamError},
		{"a slow whole answer is blamed on its dominant phase", func(r *timing.Record) {
			*r = whole()
			r.Attempts[0].Model = 2000
		}, timing.VerdictDecode},
		{"a whole answer in its normal time", func(r *timing.Record) {
			*r = whole()
			r.Attempts[0].Model = 210
		}, timing.VerdictOK},
		{"refused before any call", func(r *timing.Record) {
			r.Status, r.ErrorKind, r.Attempts = 401, "unauthorized", nil
		}, timing.VerdictRefused},
		{"no healthy target", func(r *timing.Record) {
			r.Status, r.ErrorKind, r.Attempts = 503, "overloaded", nil
		}, timing.VerdictRefused},
		{"rate limited by the gateway", func(r *timing.Record) {
			r.Status, r.ErrorKind, r.Attempts = 429, "rate_limited", nil
		}, timing.VerdictRefused},
		// A hedge's loser, cancelled by the gateway, is no failure.
		{"a hedge won", canceledLoser, timing.VerdictOK},
		{"a hedge won, slow to its first token", func(r *timing.Record) {
			canceledLoser(r)
			r.Attempts[1].TTFT = 600
		}, timing.VerdictPrefill},
		{"a hedge failed, its primary cancelled", func(r *timing.Record) {
			canceledLoser(r)
			r.Status, r.Attempts[1].Error = 502, "upstream"
		}, timing.VerdictUpstreamError},
		{"the client left a slow stream", func(r *timing.Record) {
			r.Attempts[0].Error, r.Attempts[0].TTFT = "canceled", 600
		}, timing.VerdictPrefill},
		{"the client left before any answer", func(r *timing.Record) {
			r.Status, r.ErrorKind, r.Attempts[0].Error = 499, "canceled", "canceled"
		}, timing.VerdictClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := New()
			for range 40 {
				rec := normal()
				j.Judge(&rec)
				w := whole()
				j.Judge(&w)
			}
			rec := normal()
			tt.change(&rec)
			if got := j.Judge(&rec); got.Kind != tt.want {
				t.Errorf("verdict %q (%s), want %q", got.Kind, got.Reason, tt.want)
			}
		})
	}
}

// TestNoBaselineNoBlame: without enough history only absolute limits apply.
func TestNoBaselineNoBlame(t *testing.T) {
	j := New()
	rec := normal()
	rec.Attempts[0].TTFT = 5000
	if got := j.Judge(&rec); got.Kind != timing.VerdictOK {
		t.Errorf("a first request was judged %q without a baseline", got.Kind)
	}
	rec = normal()
	rec.Attempts[0].RoundTrip, rec.Attempts[0].Network = 2000, 2000
	if got := j.Judge(&rec); got.Kind != timing.VerdictNetwork {
		t.Errorf("a 2 s round trip was judged %q", got.Kind)
	}
	rec = normal()
	headWithFirstToken(&rec, 2000, "")
	if got := j.Judge(&rec); got.Kind == timing.VerdictNetwork {
		t.Errorf("a head held 2 s without evidence of the network was judged %q (%s)", got.Kind, got.Reason)
	}
}

// TestBaselineRoundTrip: an attempt that measured no round trip of its own
// gets its target's usual one, and the rest of its wait for the head is
// counted as the upstream's time to its first token.
func TestBaselineRoundTrip(t *testing.T) {
	j := New()
	for range 3 {
		rec := normal()
		j.Judge(&rec)
	}
	rec := normal()
	headWithFirstToken(&rec, 600, "")
	other := normal() // a target with no baseline keeps its attempt as it was
	other.Attempts[0].Target = "q/m"
	headWithFirstToken(&other, 600, "")
	j.Judge(&rec)
	j.Judge(&other)
	type split struct {
		From                     string
		RoundTrip, Network, TTFT timing.Ms
	}
	got := []split{}
	for _, a := range []timing.AttemptRecord{rec.Attempts[0], other.Attempts[0]} {
		got = append(got, split{a.RoundTripFrom, a.RoundTrip, a.Network, a.TTFT})
	}
	want := []split{{timing.RoundTripBaseline, 1, 1, 599}, {"", 0, 0, 600}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("split (-want +got):\n%s", d)
	}
}
