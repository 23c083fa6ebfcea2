package ratelimit_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ratelimit"
	"github.com/tidegate/tidegate/internal/ratelimit/redisbackend"
)

// gate is a TCP forwarder to Redis that the test can cut (connections
// refused) or stall (accepted, never answered): a real Redis becomes
// unreachable for one limiter without touching the shared server.
type gate struct {
	ln    net.Listener
	mu    sync.Mutex
	mode  string // "pass", "refuse", "stall"
	conns []net.Conn
}

func newGate(t *testing.T) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, mode: "pass"}
	t.Cleanup(func() { ln.Close(); g.set("refuse") })
	go g.serve()
	return g
}

func (g *gate) url() string { return "redis://" + g.ln.Addr().String() + "/0" }

func (g *gate) set(mode string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode = mode
	for _, c := range g.conns { // cut what is open: a refused gate has none
		c.Close()
	}
	g.conns = nil
}

func (g *gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		mode := g.mode
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		switch mode {
		case "refuse":
			c.Close()
		case "stall": // held open, never answered, closed by set
		default:
			up, err := net.Dial("tcp", "127.0.0.1:6379")
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, up)
			g.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLimiterSharesAcrossReplicas(t *testing.T) {
	url, ctx := redisURL(t), context.Background()
	pfx := prefix()
	var replicas []*ratelimit.Limiter
	for range 3 {
		r, err := redisbackend.Open(url, pfx, time.Minute, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		replicas = append(replicas, ratelimit.NewShared(r, ratelimit.Config{}, nil))
	}
	admitted := 0
	for i := range 30 {
		if _, v := replicas[i%3].Admit(ctx, "k", ratelimit.Limits{RPM: 10}, false); v.Limit == "" {
			admitted++
		}
	}
	if admitted != 10 {
		t.Errorf("three replicas admitted %d under rpm 10", admitted)
	}
	// A stream slot taken on one replica is seen by the others, and its
	// end frees it for them.
	ticket, v := replicas[0].Admit(ctx, "s", ratelimit.Limits{MaxStreams: 1}, true)
	if v.Limit != "" {
		t.Fatalf("first stream: %+v", v)
	}
	if _, v := replicas[1].Admit(ctx, "s", ratelimit.Limits{MaxStreams: 1}, true); v.Limit != "max_streams" {
		t.Errorf("second stream on another replica: %+v", v)
	}
	ticket.Done(0)
	ticket.Done(0) // twice is harmless
	if _, v := replicas[2].Admit(ctx, "s", ratelimit.Limits{MaxStreams: 1}, true); v.Limit != "" {
		t.Errorf("the freed slot did not come back: %+v", v)
	}
}

func TestLimiterWhenRedisIsUnreachable(t *testing.T) {
	redisURL(t)
	ctx := context.Background()
	for _, tc := range []struct {
		policy   ratelimit.Policy
		stall    bool // accepted, never answered, rather than refused
		admitted int  // of 9 under rpm 6, with 3 replicas seen alive
		limit    string
	}{
		{policy: ratelimit.Divide, admitted: 2, limit: "rpm"}, // ceil(6/3)
		{policy: ratelimit.Divide, stall: true, admitted: 2, limit: "rpm"},
		{policy: ratelimit.Open, admitted: 9},
		{policy: ratelimit.Closed, admitted: 0, limit: ratelimit.Unavailable},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			g, pfx := newGate(t), prefix()
			logs := &syncBuffer{}
			var limiters []*ratelimit.Limiter
			for i := range 3 {
				r, err := redisbackend.Open(g.url(), pfx, time.Minute, 150*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				logger := slog.New(slog.DiscardHandler)
				if i == 0 {
					logger = slog.New(slog.NewTextHandler(logs, nil))
				}
				l := ratelimit.NewShared(r, ratelimit.Config{Policy: tc.policy, Timeout: 150 * time.Millisecond, LeaseTTL: 300 * time.Millisecond}, logger)
				limiters = append(limiters, l)
			}
			// Each replica announces itself; the last to do so sees all three.
			rctx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for _, l := range limiters {
				wg.Go(func() { l.Run(rctx) })
			}
			deadline := time.Now().Add(10 * time.Second)
			for limiters[0].Replicas() != 3 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // the heartbeat has no signal to wait on
			}
			stop()
			wg.Wait()
			if n := limiters[0].Replicas(); n != 3 {
				t.Fatalf("replicas seen: %d", n)
			}
			if tc.stall {
				g.set("stall")
			} else {
				g.set("refuse")
			}
			start := time.Now()
			admitted, last := 0, ""
			for range 9 {
				_, v := limiters[0].Admit(ctx, "k", ratelimit.Limits{RPM: 6}, false)
				if v.Limit == "" {
					admitted++
				} else {
					last = v.Limit
				}
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("9 requests took %v with Redis down: they waited on it", took)
			}
			if admitted != tc.admitted || last != tc.limit {
				t.Errorf("admitted %d (last refusal %q), want %d (%q)", admitted, last, tc.admitted, tc.limit)
			}
			if n := strings.Count(logs.String(), "rate limit store unreachable"); n != 1 {
				t.Errorf("the outage was logged %d times, want once:\n%s", n, logs)
			}
		})
	}
}
