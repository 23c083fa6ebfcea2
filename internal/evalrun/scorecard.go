package evalrun

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tidegate/tidegate/internal/eval"
)

// Interval methods.
const (
	IntervalWilson = "wilson" // every score 0 or 1: pass/fail
	IntervalT      = "t"      // fractional scores: Student t on the mean
)

// Money is an amount in a currency's units (not micros).
type Money struct {
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
}

func money(micros int64, currency string) Money {
	return Money{Amount: float64(micros) / 1e6, Currency: currency}
}

// ModelScore is one model's line of the scorecard.
type ModelScore struct {
	Model string `json:"model"`
	// Quality is the mean score, with its 95% confidence interval.
	Quality     float64 `json:"quality"`
	QualityLow  float64 `json:"quality_low"`
	QualityHigh float64 `json:"quality_high"`
	Interval    string  `json:"interval"`
	Items       int     `json:"items"`
	Errors      int     `json:"errors"` // calls or gradings that failed, scored 0
	// Cost is the run's spend on the model, from the ledger; CostPer1000
	// that per 1,000 tasks; JudgeCost the judge's, apart.
	Cost         Money   `json:"cost"`
	CostPer1000  Money   `json:"cost_per_1000"`
	JudgeCost    Money   `json:"judge_cost"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP95MS float64 `json:"latency_p95_ms"`
	Pareto       bool    `json:"pareto"` // on the quality × cost front
}

// Scorecard is a run's status and its per-model scores, in the run's
// model order.
type Scorecard struct {
	ID      string       `json:"id"`
	Suite   string       `json:"suite"`
	Status  string       `json:"status"`
	Error   string       `json:"error,omitempty"`
	Done    int          `json:"done"`  // item×model results stored
	Total   int          `json:"total"` // items × models
	Results []ModelScore `json:"results"`
}

// Score builds a run's scorecard from its stored results.
func Score(run *eval.Run, results []eval.RunResult) *Scorecard {
	sc := &Scorecard{ID: run.ID, Suite: run.Suite, Status: run.Status, Error: run.Error, Done: len(results), Total: run.Items * len(run.Models), Results: []ModelScore{}}
	byModel := map[string][]eval.RunResult{}
	for _, r := range results {
		byModel[r.Model] = append(byModel[r.Model], r)
	}
	var points []Point
	for _, m := range run.Models {
		rs := byModel[m]
		ms := ModelScore{Model: m, Items: len(rs), Interval: IntervalWilson}
		var cost, judge int64
		currency := ""
		scores := make([]float64, 0, len(rs))
		latencies := make([]time.Duration, 0, len(rs))
		passes, binary := 0, true
		for _, r := range rs {
			scores = append(scores, r.Score)
			latencies = append(latencies, r.Latency)
			switch r.Score {
			case 1:
				passes++
			case 0:
			default:
				binary = false
			}
			if r.Error != "" {
				ms.Errors++
			}
			cost, judge = addMicros(cost, r.CostMicros), addMicros(judge, r.JudgeCostMicros)
			if currency == "" {
				currency = r.Currency
			}
		}
		ms.Quality, ms.QualityLow, ms.QualityHigh = TInterval(scores)
		if binary {
			ms.QualityLow, ms.QualityHigh = Wilson(passes, len(rs))
		} else {
			ms.Interval = IntervalT
		}
		ms.Cost, ms.JudgeCost = money(cost, currency), money(judge, currency)
		ms.CostPer1000 = Money{Currency: currency}
		if len(rs) > 0 {
			ms.CostPer1000.Amount = ms.Cost.Amount * 1000 / float64(len(rs))
		}
		ms.LatencyP50MS = ms2(Percentile(latencies, 0.50))
		ms.LatencyP95MS = ms2(Percentile(latencies, 0.95))
		sc.Results = append(sc.Results, ms)
		points = append(points, Point{Quality: ms.Quality, Cost: ms.CostPer1000.Amount})
	}
	for i, on := range Pareto(points) {
		sc.Results[i].Pareto = on && sc.Results[i].Items > 0
	}
	return sc
}

// addMicros adds costs read from the store, saturating rather than wrapping.
func addMicros(a, b int64) int64 {
	if b > 0 && a > (1<<63-1)-b {
		return 1<<63 - 1
	}
	return a + b
}

func ms2(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Table writes the scorecard for a terminal.
func (sc *Scorecard) Table(w io.Writer) error {
	fmt.Fprintf(w, "run %s of suite %s: %s, %d/%d graded\n", sc.ID, sc.Suite, sc.Status, sc.Done, sc.Total)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tQUALITY\t95% CI\tITEMS\tERRORS\tCOST/1K TASKS\tP50 MS\tP95 MS\tPARETO")
	for _, m := range sc.Results {
		front := ""
		if m.Pareto {
			front = "*"
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f–%.3f (%s)\t%d\t%d\t%.4f %s\t%.0f\t%.0f\t%s\n", m.Model, m.Quality, m.QualityLow, m.QualityHigh, m.Interval,
			m.Items, m.Errors, m.CostPer1000.Amount, m.CostPer1000.Currency, m.LatencyP50MS, m.LatencyP95MS, front)
	}
	return tw.Flush()
}
