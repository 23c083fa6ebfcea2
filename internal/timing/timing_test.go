package timing

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// at sets an attempt's marks to exact offsets, for deterministic phases.
func setAttempt(a *Attempt, start, end time.Duration) {
	a.start.Store(int64(start))
	a.end.Store(int64(end))
	a.ended.Store(true)
	a.req.open.Add(-1)
}

func TestPhasesPartitionTheTotal(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name        string
		attempts    [][2]time.Duration // start, end
		client      time.Duration      // written while attempts are open
		clientAfter time.Duration      // written after they ended
		want        Phases
	}{
		{"one attempt", [][2]time.Duration{{2 * ms, 12 * ms}}, 0, 0,
			Phases{Auth: 1, Route: 1, Upstream: 10, Client: 0, Gateway: 8, Total: 20}},
		{"a retry after a failure", [][2]time.Duration{{2 * ms, 5 * ms}, {6 * ms, 16 * ms}}, 0, 0,
			Phases{Auth: 1, Route: 1, Upstream: 13, Client: 0, Gateway: 5, Total: 20}},
		{"a hedge overlapping its primary counts once", [][2]time.Duration{{2 * ms, 14 * ms}, {6 * ms, 16 * ms}}, 0, 0,
			Phases{Auth: 1, Route: 1, Upstream: 14, Client: 0, Gateway: 4, Total: 20}},
		{"a slow reader during a stream is the client's", [][2]time.Duration{{2 * ms, 18 * ms}}, 6 * ms, 0,
			Phases{Auth: 1, Route: 1, Upstream: 10, Client: 6, Gateway: 2, Total: 20}},
		{"a slow reader of a whole answer", [][2]time.Duration{{2 * ms, 12 * ms}}, 0, 5 * ms,
			Phases{Auth: 1, Route: 1, Upstream: 10, Client: 5, Gateway: 3, Total: 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New("r", time.Now(), false)
			r.authenticated, r.routed = ms, 2*ms
			var as []*Attempt
			for range tt.attempts {
				_, a := r.StartAttempt(context.Background(), "p/m", 1)
				as = append(as, a)
			}
			if tt.client > 0 {
				r.ClientWait(tt.client) // attempts still open
			}
			for i, a := range as {
				setAttempt(a, tt.attempts[i][0], tt.attempts[i][1])
			}
			if tt.clientAfter > 0 {
				r.ClientWait(tt.clientAfter)
			}
			got := r.Finish(Meta{}, 20*ms).Phases
			if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b Ms) bool { return a-b < 1e-6 && b-a < 1e-6 })); d != "" {
				t.Errorf("phases (-want +got):\n%s", d)
			}
		})
	}
}

// TestAttemptSnapshot: the wait for the head is the network's only up to
// the round trip the attempt measured (its reported processing time, or its
// own TCP handshake); the rest is the upstream's, whether it sends its head
// at once or with the first token.
func TestAttemptSnapshot(t *testing.T) {
	type marks struct {
		connect                                   [2]float64 // start, done; zero: a reused connection
		written, firstByte, firstToken, lastToken float64
		end, processing                           float64
		output                                    int
	}
	type split struct {
		HeadWait, RoundTrip, Network, TTFT, Model, Transfer, Decode Ms
		From                                                        string
		TokensPerSecond                                             float64
	}
	tests := []struct {
		name string
		m    marks
		want split
	}{
		{"a stream, head at once, new connection",
			marks{connect: [2]float64{1, 3}, written: 4, firstByte: 5, firstToken: 55, lastToken: 155, end: 156, output: 11},
			split{HeadWait: 1, RoundTrip: 1, From: RoundTripConnect, Network: 3, TTFT: 50, Decode: 100, TokensPerSecond: 100}},
		{"a stream, head with the first token, new connection",
			marks{connect: [2]float64{1, 3}, written: 4, firstByte: 1504, firstToken: 1504, lastToken: 1604, end: 1605, output: 11},
			split{HeadWait: 1500, RoundTrip: 2, From: RoundTripConnect, Network: 4, TTFT: 1498, Decode: 100, TokensPerSecond: 100}},
		{"a stream, head with the first token, processing reported",
			marks{written: 4, processing: 1499, firstByte: 1504, firstToken: 1504, lastToken: 1604, end: 1605, output: 11},
			split{HeadWait: 1500, RoundTrip: 1, From: RoundTripProcessing, Network: 1, TTFT: 1499, Decode: 100, TokensPerSecond: 100}},
		{"a stream behind a slow path, processing reported",
			marks{written: 4, processing: 1, firstByte: 305, firstToken: 355, lastToken: 455, end: 456, output: 11},
			split{HeadWait: 301, RoundTrip: 300, From: RoundTripProcessing, Network: 300, TTFT: 51, Decode: 100, TokensPerSecond: 100}},
		{"a stream on a reused connection, no evidence",
			marks{written: 4, firstByte: 1504, firstToken: 1504, lastToken: 1604, end: 1605, output: 11},
			split{HeadWait: 1500, TTFT: 1500, Decode: 100, TokensPerSecond: 100}},
		{"a whole answer, processing reported",
			marks{written: 4, processing: 200, firstByte: 210, end: 212, output: 11},
			split{HeadWait: 206, RoundTrip: 6, From: RoundTripProcessing, Network: 6, Model: 200, Transfer: 2}},
		{"a whole answer on a new connection",
			marks{connect: [2]float64{1, 3}, written: 4, firstByte: 210, end: 212, output: 11},
			split{HeadWait: 206, RoundTrip: 2, From: RoundTripConnect, Network: 4, Model: 204, Transfer: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New("r", time.Now(), false)
			_, a := r.StartAttempt(context.Background(), "p/m", 3)
			set := func(v interface{ Store(int64) }, ms float64) {
				if ms != 0 {
					v.Store(int64(ms * float64(time.Millisecond)))
				}
			}
			a.wire.Store(true)
			a.reused.Store(tt.m.connect[1] == 0)
			set(&a.connectStart, tt.m.connect[0])
			set(&a.connectDone, tt.m.connect[1])
			set(&a.written, tt.m.written)
			set(&a.firstByte, tt.m.firstByte)
			set(&a.firstToken, tt.m.firstToken)
			set(&a.lastToken, tt.m.lastToken)
			a.Processing(time.Duration(tt.m.processing * float64(time.Millisecond)))
			a.Tokens(100, tt.m.output)
			a.End("")
			set(&a.end, tt.m.end)
			s := a.Snapshot()
			got := split{HeadWait: s.HeadWait, RoundTrip: s.RoundTrip, From: s.RoundTripFrom, Network: s.Network, TTFT: s.TTFT,
				Model: s.Model, Transfer: s.Transfer, Decode: s.Decode, TokensPerSecond: s.TokensPerSecond}
			if d := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 1e-6), cmp.Comparer(func(a, b Ms) bool { return a-b < 1e-6 && b-a < 1e-6 })); d != "" {
				t.Errorf("snapshot (-want +got):\n%s", d)
			}
		})
	}
}
