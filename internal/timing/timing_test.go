package timing

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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

func TestAttemptSnapshot(t *testing.T) {
	r := New("r", time.Now(), false)
	_, a := r.StartAttempt(context.Background(), "p/m", 3)
	set := func(v interface{ Store(int64) }, ms float64) { v.Store(int64(ms * float64(time.Millisecond))) }
	a.wire.Store(true)
	set(&a.connectStart, 1)
	set(&a.connectDone, 3)
	set(&a.written, 4)
	set(&a.firstByte, 9)   // the head: 5 ms of network
	set(&a.firstToken, 59) // 50 ms to the first token
	set(&a.lastToken, 159) // 10 more tokens in 100 ms
	a.Tokens(100, 11)
	a.End("")
	got := a.Snapshot()
	if got.Network != 7 || got.TTFT != 50 || got.Decode != 100 || got.TokensPerSecond != 100 || got.InFlight != 3 {
		t.Errorf("snapshot: network %v ttft %v decode %v tok/s %v in flight %d", got.Network, got.TTFT, got.Decode, got.TokensPerSecond, got.InFlight)
	}
}
