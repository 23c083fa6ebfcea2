package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/status"
	"github.com/tidegate/tidegate/internal/timing"
)

// TestPrintStatusPool: with no pool configured status says so, as the
// console does; with one it lists its targets with the API requests and
// batch items each counts, and says which traffic each column counts.
func TestPrintStatusPool(t *testing.T) {
	for _, c := range []struct {
		name      string
		rep       status.Report
		want, not []string
	}{
		{"no pool", status.Report{Targets: []status.TargetStatus{{Target: "sim/fast"}}},
			[]string{"No self-hosted pool is configured", "requests: attempts made for API requests (batch items are not counted)"},
			[]string{"self-hosted target"}},
		{"pool", status.Report{PoolConfigured: true, Pool: []status.PoolTarget{{Target: "cheap/fast", Requests: 2, BatchItems: 5, Share: 1, Fresh: true}}},
			[]string{"self-hosted target", "batch items", "requests and share: API requests' attempts", "cheap/fast"},
			[]string{"No self-hosted pool"}},
		{"pool, nothing yet", status.Report{PoolConfigured: true}, []string{"no configured target yet"}, []string{"No self-hosted pool"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			printStatus(&out, &c.rep)
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range c.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("output has %q:\n%s", n, out.String())
				}
			}
		})
	}
}

// TestPrintTimelineRouteReason: the text timeline says why the route chose
// its order, as --json does.
func TestPrintTimelineRouteReason(t *testing.T) {
	var out bytes.Buffer
	printTimeline(&out, &timing.Record{ID: "req_1", Model: "pool", Status: 200, Route: "cheap-b/q",
		RouteReason: "balance: load: cheap-b/q predicted 120ms"})
	if want := "route reason: balance: load: cheap-b/q predicted 120ms\n"; !strings.Contains(out.String(), want) {
		t.Errorf("timeline lacks %q:\n%s", want, out.String())
	}
}

// TestSimHelpDefaults: sim's help shows what an unset override means, not
// the sentinel behind it (-1, -1ns); a negative override is refused.
func TestSimHelpDefaults(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"sim", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("sim --help: exit %d", code)
	}
	help := out.String() + errb.String()
	for _, bad := range []string{"default -1"} {
		if strings.Contains(help, bad) {
			t.Errorf("sim --help shows %q:\n%s", bad, help)
		}
	}
	for _, want := range []string{"-ttft duration", "-tps tokens/s", "(default: each model's own)"} {
		if !strings.Contains(help, want) {
			t.Errorf("sim --help lacks %q:\n%s", want, help)
		}
	}
	if code := Main(context.Background(), []string{"sim", "--tps", "-1"}, io.Discard, io.Discard); code == 0 {
		t.Error("sim --tps -1 accepted")
	}
}
