package console

import (
	"fmt"

	"github.com/tidegate/tidegate/internal/timing"
)

// A waterfall is a request's timeline drawn as bars on one time axis,
// rendered on the server as SVG: a Gantt of a few rows is layout, not a
// chart a plotting library draws better, and it needs no script.
type waterfall struct {
	Width, Height int
	LabelWidth    int
	Rows          []bar
	Ticks         []tick
}

type bar struct {
	Label       string
	Class       string
	Y, TextY    int
	X, W, End   float64
	Start, Dur  float64 // ms
	Description string
}

type tick struct {
	X     float64
	Label string
}

const (
	wfWidth  = 960
	wfLabels = 230
	wfRow    = 20
	wfTop    = 22
)

// buildWaterfall lays out the phases and every attempt's marks. Numbers
// come from the stored record: negative or reversed spans are skipped.
func buildWaterfall(rec *timing.Record) waterfall {
	total := float64(rec.Phases.Total)
	for _, a := range rec.Attempts {
		total = max(total, float64(a.EndAt))
	}
	if total <= 0 {
		total = 1
	}
	scale := float64(wfWidth-wfLabels-80) / total // room for the last label
	wf := waterfall{Width: wfWidth, LabelWidth: wfLabels}
	add := func(label, class string, from, to float64, desc string) {
		if from < 0 || to < from {
			return
		}
		y := wfTop + len(wf.Rows)*wfRow
		w := (to - from) * scale
		if w < 1 {
			w = 1 // a mark too short to see still shows
		}
		wf.Rows = append(wf.Rows, bar{Label: label, Class: class, Y: y, TextY: y + 13, X: float64(wfLabels) + from*scale, W: w, End: float64(wfLabels) + from*scale + w,
			Start: from, Dur: to - from, Description: desc})
	}
	p := rec.Phases
	add("total", "bar-total", 0, float64(p.Total), "arrival to last byte")
	add("auth", "bar-auth", 0, float64(p.Auth), "checking the key")
	add("route", "bar-route", float64(p.Auth), float64(p.Auth+p.Route), "checking, planning, holding the budget")
	for _, a := range rec.Attempts {
		class, status := "bar-attempt", "ok"
		if a.Error != "" {
			class, status = "bar-failed", a.Error
		}
		start, end := float64(a.StartAt), float64(a.EndAt)
		add(fmt.Sprintf("attempt %d · %s", a.Number, a.Target), class, start, end, status)
		at := start
		for _, ph := range []struct {
			name, class string
			d           timing.Ms
		}{{"dns", "bar-dns", a.DNS}, {"connect", "bar-connect", a.Connect}, {"tls", "bar-tls", a.TLS}} {
			if ph.d > 0 {
				add("  "+ph.name, ph.class, at, at+float64(ph.d), "new connection")
				at += float64(ph.d)
			}
		}
		sent := float64(a.WrittenAt)
		if sent == 0 {
			sent = at
		}
		if a.FirstByteAt > 0 {
			add("  wait for head", "bar-head", sent, float64(a.FirstByteAt), fmt.Sprintf("network share %.1f ms (%s)", float64(a.RoundTrip), a.RoundTripFrom))
		}
		if a.FirstTokenAt > 0 {
			add("  first token", "bar-ttft", sent, float64(a.FirstTokenAt), fmt.Sprintf("upstream TTFT %.1f ms", float64(a.TTFT)))
			if a.LastTokenAt > a.FirstTokenAt {
				add("  decode", "bar-decode", float64(a.FirstTokenAt), float64(a.LastTokenAt),
					fmt.Sprintf("%d tokens at %.1f tokens/s", a.OutputTokens, a.TokensPerSecond))
			}
		}
	}
	if p.Client > 0 {
		add("client", "bar-client", float64(p.Total-p.Client), float64(p.Total), "blocked writing to the client, or reading its upload")
	}
	wf.Height = wfTop + len(wf.Rows)*wfRow + 6
	for i := range 5 {
		v := total * float64(i) / 4
		wf.Ticks = append(wf.Ticks, tick{X: float64(wfLabels) + v*scale, Label: fmt.Sprintf("%.0f ms", v)})
	}
	return wf
}
