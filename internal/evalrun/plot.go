package evalrun

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH             = 640.0, 420.0
	padL, padR, padT, padB   = 70.0, 30.0, 40.0, 55.0
	innerW, innerH           = plotW - padL - padR, plotH - padT - padB
	plotTicks                = 5
	pointRadius, barCapWidth = 4.0, 4.0
)

// SVG plots quality (with its 95% interval) against cost per 1,000 tasks,
// the Pareto front joined by a line. Hand-written: no small, well-kept Go
// plotting library is served to this project.
func (sc *Scorecard) SVG(w io.Writer) error {
	var b bytes.Buffer
	maxCost, currency := 0.0, ""
	for _, m := range sc.Results {
		maxCost = max(maxCost, m.CostPer1000.Amount)
		if currency == "" {
			currency = m.CostPer1000.Currency
		}
	}
	if maxCost <= 0 {
		maxCost = 1
	}
	maxCost *= 1.1 // room for the rightmost label
	x := func(cost float64) float64 { return padL + cost/maxCost*innerW }
	y := func(q float64) float64 { return padT + (1-q)*innerH }
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14">%s</text>`+"\n", padL, esc(fmt.Sprintf("suite %s, run %s: quality × cost", sc.Suite, sc.ID)))
	// Axes with ticks.
	fmt.Fprintf(&b, `<path d="M%.1f %.1f V%.1f H%.1f" stroke="black" fill="none"/>`+"\n", padL, padT, padT+innerH, padL+innerW)
	for i := 0; i <= plotTicks; i++ {
		f := float64(i) / plotTicks
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%.1f</text>`+"\n", padL-8, y(f)+4, f)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padL, y(f), padL+innerW, y(f))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(f*maxCost), padT+innerH+18, esc(fmt.Sprintf("%.3g", f*maxCost)))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", padL+innerW/2, plotH-12, esc("cost per 1,000 tasks ("+currency+")"))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">quality (95%% CI)</text>`+"\n", padT+innerH/2, padT+innerH/2)
	// The Pareto front, cheapest first.
	var front []ModelScore
	for _, m := range sc.Results {
		if m.Pareto {
			front = append(front, m)
		}
	}
	slices.SortFunc(front, func(a, b ModelScore) int {
		if a.CostPer1000.Amount != b.CostPer1000.Amount {
			return cmpFloat(a.CostPer1000.Amount, b.CostPer1000.Amount)
		}
		return cmpFloat(a.Quality, b.Quality)
	})
	if len(front) > 1 {
		b.WriteString(`<polyline class="pareto" fill="none" stroke="#d62728" stroke-dasharray="4 3" points="`)
		for i, m := range front {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(m.CostPer1000.Amount), y(m.Quality))
		}
		b.WriteString("\"/>\n")
	}
	for _, m := range sc.Results {
		if m.Items == 0 {
			continue
		}
		cx := x(m.CostPer1000.Amount)
		color := "#1f77b4"
		if m.Pareto {
			color = "#d62728"
		}
		fmt.Fprintf(&b, `<g class="model"><title>%s</title>`, esc(fmt.Sprintf("%s: quality %.3f (%.3f–%.3f), %.4f %s per 1,000 tasks", m.Model, m.Quality, m.QualityLow, m.QualityHigh, m.CostPer1000.Amount, m.CostPer1000.Currency)))
		fmt.Fprintf(&b, `<path d="M%.1f %.1f V%.1f M%.1f %.1f h%.1f M%.1f %.1f h%.1f" stroke="%s"/>`, cx, y(m.QualityLow), y(m.QualityHigh),
			cx-barCapWidth, y(m.QualityLow), 2*barCapWidth, cx-barCapWidth, y(m.QualityHigh), 2*barCapWidth, color)
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="%.0f" fill="%s"/>`, cx, y(m.Quality), pointRadius, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text></g>`+"\n", cx+7, y(m.Quality)-6, esc(m.Model))
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// esc escapes text for XML: model and suite names are the operator's.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
