package console

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/timing"
)

func TestWaterfall(t *testing.T) {
	type row struct {
		Label      string
		Start, Dur float64
	}
	tests := []struct {
		name string
		rec  timing.Record
		want []row
	}{{
		name: "a failed attempt over a new TLS connection, then a stream",
		rec: timing.Record{Phases: timing.Phases{Auth: 1, Route: 2, Client: 5, Total: 100},
			Attempts: []timing.AttemptRecord{
				{Number: 1, Target: "a/m", Error: "unavailable", StartAt: 3, EndAt: 20, DNS: 2, Connect: 3, TLS: 4, WrittenAt: 13, FirstByteAt: 19},
				{Number: 2, Target: "b/m", StartAt: 21, EndAt: 95, WrittenAt: 22, FirstByteAt: 30, FirstTokenAt: 40, LastTokenAt: 90, OutputTokens: 20},
			}},
		want: []row{
			{"total", 0, 100}, {"auth", 0, 1}, {"route", 1, 2},
			{"attempt 1 · a/m", 3, 17}, {"  dns", 3, 2}, {"  connect", 5, 3}, {"  tls", 8, 4}, {"  wait for head", 13, 6},
			{"attempt 2 · b/m", 21, 74}, {"  wait for head", 22, 8}, {"  first token", 22, 18}, {"  decode", 40, 50},
			{"client", 95, 5},
		},
	}, {
		name: "reversed marks are left out, not drawn backwards",
		rec: timing.Record{Phases: timing.Phases{Total: 10},
			Attempts: []timing.AttemptRecord{{Number: 1, Target: "a/m", StartAt: 8, EndAt: 2, WrittenAt: 5, FirstByteAt: 4}}},
		want: []row{{"total", 0, 10}, {"auth", 0, 0}, {"route", 0, 0}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wf := buildWaterfall(&tc.rec)
			var got []row
			for _, b := range wf.Rows {
				got = append(got, row{b.Label, b.Start, b.Dur})
				if b.X < float64(wf.LabelWidth) || b.End > float64(wf.Width) || b.W < 1 {
					t.Errorf("%s drawn outside the chart: x %.1f to %.1f", b.Label, b.X, b.End)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}
