package ability

import (
	"math"
	"sort"

	"github.com/tidegate/tidegate/internal/eval"
)

// Folds is the number of cross-validation folds the threshold is
// calibrated on.
const Folds = 5

// Learned is what a suite's results teach about a route's targets: one
// model per target (nil: the target has no results) and, per item, each
// target's held-out prediction and actual score, kept so a price change
// recalibrates without retraining.
type Learned struct {
	Targets []string // "provider/model", as the route lists them
	Models  []*Logistic
	Items   int
	oof     [][]float64
	score   [][]float64
}

// Dataset is a suite's results as a table: one row per item, one column
// per target; NaN where the target has no result for the item.
type Dataset struct {
	X     []Vec
	Score [][]float64
}

// Table builds the dataset of results for targets. Results of a model
// that is not a target are ignored; several results of one item and
// target (several runs) are averaged.
func Table(results []eval.ItemResult, targets []string) Dataset {
	col := make(map[string]int, len(targets))
	for i, t := range targets {
		col[t] = i
	}
	row := map[string]int{}
	var d Dataset
	var n [][]int
	for _, r := range results {
		t, ok := col[r.Model]
		if !ok {
			continue
		}
		i, ok := row[r.ItemID]
		if !ok {
			i = len(d.X)
			row[r.ItemID] = i
			d.X = append(d.X, Featurize(PromptText(r.Messages)))
			s := make([]float64, len(targets))
			for k := range s {
				s[k] = math.NaN()
			}
			d.Score = append(d.Score, s)
			n = append(n, make([]int, len(targets)))
		}
		score := min(max(r.Score, 0), 1) // a grader's 0–1, checked before it is learned from
		if math.IsNaN(r.Score) {
			continue
		}
		if n[i][t] == 0 {
			d.Score[i][t] = 0
		}
		n[i][t]++
		d.Score[i][t] += (score - d.Score[i][t]) / float64(n[i][t])
	}
	return d
}

// Learn trains each target's model on the whole dataset and, for the
// calibration, on Folds−1 folds at a time to predict the fold left out.
// Folds are assigned by item position, which Table keeps in the results'
// order; seed shuffles them.
func Learn(d Dataset, targets []string, seed uint64) *Learned {
	l := &Learned{Targets: targets, Models: make([]*Logistic, len(targets)), Items: len(d.X)}
	nt := len(targets)
	l.oof = make([][]float64, len(d.X))
	l.score = d.Score
	for i := range l.oof {
		l.oof[i] = make([]float64, nt)
	}
	fold := folds(len(d.X), seed)
	ys := make([]float64, len(d.X))
	for t := 0; t < nt; t++ {
		var all []int
		for i := range d.X {
			if !math.IsNaN(d.Score[i][t]) {
				all = append(all, i)
				ys[i] = d.Score[i][t]
			}
		}
		if len(all) == 0 {
			for i := range l.oof {
				l.oof[i][t] = math.NaN()
			}
			continue
		}
		cfg := Train{Seed: seed + uint64(t)}
		l.Models[t] = Fit(d.X, ys, all, cfg)
		for f := 0; f < Folds; f++ {
			var in []int
			for _, i := range all {
				if fold[i] != f {
					in = append(in, i)
				}
			}
			m := Fit(d.X, ys, in, cfg)
			for i := range d.X {
				if fold[i] == f {
					l.oof[i][t] = m.Predict(d.X[i])
				}
			}
		}
	}
	return l
}

// folds deals n items into Folds folds of near-equal size, shuffled by seed.
func folds(n int, seed uint64) []int {
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	// A fixed multiplicative shuffle: deterministic, no RNG state to share.
	sort.Slice(perm, func(a, b int) bool {
		return mix(uint64(perm[a])^seed) < mix(uint64(perm[b])^seed)
	})
	f := make([]int, n)
	for k, i := range perm {
		f[i] = k % Folds
	}
	return f
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// Calibrate calibrates the threshold for costs (per target, one unit for
// all) and bar.
func (l *Learned) Calibrate(cost []float64, bar float64) Calibration {
	return Calibrate(l.oof, l.score, cost, bar)
}
