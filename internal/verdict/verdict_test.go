package verdict

import (
	"testing"

	"github.com/tidegate/tidegate/internal/timing"
)

// normal is a healthy streamed request on target p/m: 1 ms network, 50 ms
// to the first token, 100 tokens/s, 0.2 ms of gateway time.
func normal() timing.Record {
	return timing.Record{Status: 200, Stream: true,
		Phases: timing.Phases{Auth: 0.05, Route: 0.05, Upstream: 200, Gateway: 0.1, Total: 200.2},
		Attempts: []timing.AttemptRecord{{Number: 1, Target: "p/m", Wire: true, Reused: true, InFlight: 1,
			StartAt: 0.1, EndAt: 200.1, Network: 1, TTFT: 50, Decode: 150, PromptTokens: 100, OutputTokens: 16, TokensPerSecond: 100}}}
}

func TestVerdicts(t *testing.T) {
	tests := []struct {
		name   string
		change func(*timing.Record)
		want   string
	}{
		{"healthy", func(*timing.Record) {}, timing.VerdictOK},
		{"slow network", func(r *timing.Record) { r.Attempts[0].Network = 300 }, timing.VerdictNetwork},
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
			r.Stream = false
			a := &r.Attempts[0]
			a.TTFT, a.Decode, a.TokensPerSecond, a.Model = 0, 0, 0, 2000
		}, timing.VerdictDecode},
		{"a whole answer in its normal time", func(r *timing.Record) {
			r.Stream = false
			a := &r.Attempts[0]
			a.TTFT, a.Decode, a.TokensPerSecond, a.Model = 0, 0, 0, 210
		}, timing.VerdictOK},
		{"refused before any call", func(r *timing.Record) {
			r.Status, r.ErrorKind, r.Attempts = 401, "unauthorized", nil
		}, timing.VerdictOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := New()
			for range 40 {
				rec := normal()
				j.Judge(&rec)
				whole := normal() // the same answers, not streamed: 200 ms of model time
				whole.Stream = false
				a := &whole.Attempts[0]
				a.TTFT, a.Decode, a.TokensPerSecond, a.Model = 0, 0, 0, 200
				j.Judge(&whole)
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
	rec.Attempts[0].Network = 2000
	if got := j.Judge(&rec); got.Kind != timing.VerdictNetwork {
		t.Errorf("a 2 s network wait was judged %q", got.Kind)
	}
}
