package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/bench"
)

// TestBenchRuns drives the whole benchmark at a tiny load with the gateway in
// process. It checks that every phase completes without errors; the figures
// themselves are for `tidegate bench`, never asserted in a test.
func TestBenchRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := bench.Run(ctx, bench.Options{Rate: 200, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond,
		Streams: 20, Tokens: 8, Start: startInProcess, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []bench.Phase{rep.Direct, rep.Gateway, rep.DirectSSE, rep.GatewaySSE} {
		if p.Sent < 50 || p.Errors != 0 || len(p.Latencies) != p.Sent {
			t.Errorf("%s: sent %d, errors %d, timed %d", p.Name, p.Sent, p.Errors, len(p.Latencies))
		}
	}
	if rep.StreamsOK != 20 || rep.RSSStreams == 0 || rep.Startup <= 0 {
		t.Errorf("streams %d, rss %d, startup %v", rep.StreamsOK, rep.RSSStreams, rep.Startup)
	}
	var out strings.Builder
	rep.Print(&out)
	if !strings.Contains(out.String(), "| added by tidegate |") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestPercentiles(t *testing.T) {
	p := bench.Phase{}
	for i := 1; i <= 100; i++ {
		p.Latencies = append(p.Latencies, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := p.Pct(q); got != want {
			t.Errorf("p%.0f = %v, want %v", q*100, got, want)
		}
	}
}

// TestPacedBenchRuns drives the paced bench with its floor phase at a tiny
// load: the sim and the bare relay are this binary as their own processes.
func TestPacedBenchRuns(t *testing.T) {
	t.Setenv("TIDEGATE_TEST_MAIN", "1") // the children run Main (TestMain)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := bench.RunPaced(ctx, bench.PacedOptions{Rate: 40, Duration: 400 * time.Millisecond, Warmup: 50 * time.Millisecond,
		TTFT: 20 * time.Millisecond, TBT: 5 * time.Millisecond, Tokens: 5, Streams: 10, HoldFor: 300 * time.Millisecond,
		Dir: t.TempDir(), Start: startInProcess, Upstream: startSim, Floor: startFloorRelay})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Floor == nil {
		t.Fatal("no floor phase")
	}
	for _, p := range []*bench.PacedPhase{&rep.Direct, rep.Floor, &rep.Gateway} {
		if p.Sent < 10 || p.Errors != 0 || len(p.TTFC) != p.Sent {
			t.Errorf("%s: sent %d, errors %d (%v), timed %d", p.Name, p.Sent, p.Errors, p.Why, len(p.TTFC))
		}
		// Each answer's tokens, its finish and [DONE] (usage rides along).
		if ok := p.Sent - p.Errors; ok > 0 && p.Chunks < int64(ok)*7 {
			t.Errorf("%s: %d chunks for %d streams", p.Name, p.Chunks, ok)
		}
	}
	if rep.Floor.Gateway <= 0 {
		t.Error("the bare relay's CPU was not read")
	}
	if rep.StreamsOK != 10 || rep.RSSStreams == 0 || rep.RSSHeld < rep.RSSStreams {
		t.Errorf("held streams %d, rss %d then %d", rep.StreamsOK, rep.RSSStreams, rep.RSSHeld)
	}
	var out strings.Builder
	rep.Print(&out)
	for _, want := range []string{"| through a bare relay (floor) |", "bare relay CPU per stream ÷ upstream", "highest over"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
