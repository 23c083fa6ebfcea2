package ability

import "math"

// choose is the routing rule, shared by the request path and the
// calibration so what is calibrated is what serves: the cheapest target
// whose predicted success reaches tau; when none does, safe, the route's
// best target on the suite (fallback; -1: the likeliest). p and cost are
// per target; a NaN p (a target with no results) never passes. It returns
// -1 only when no target has a prediction.
func choose(p []float64, cost []float64, tau float64, fallback int) int {
	if fallback >= 0 && math.IsNaN(p[fallback]) {
		fallback = -1
	}
	best, likeliest := -1, -1
	for t := range p {
		if math.IsNaN(p[t]) {
			continue
		}
		if p[t] >= tau && (best < 0 || cost[t] < cost[best]) {
			best = t
		}
		if likeliest < 0 || p[t] > p[likeliest] {
			likeliest = t
		}
	}
	switch {
	case best >= 0:
		return best
	case fallback >= 0:
		return fallback
	}
	return likeliest
}

// Calibration is the chosen threshold and what it achieved on held-out
// predictions.
type Calibration struct {
	Tau float64
	// Quality and Cost are the routed mean score and mean cost per item on
	// the held-out folds; Best is the best single target's mean score and
	// BestTarget its index.
	Quality, Cost, Best float64
	BestTarget          int
	// Met says Quality reached bar × Best (with its margin); when no
	// threshold does, Tau is above 1: every prompt goes to BestTarget.
	Met bool
}

// tauGrid is the thresholds tried, 0 to 1 by 0.01, then above 1 (no target
// passes). A grid rather than every distinct prediction keeps calibration
// O(grid × items × targets) on a 10,000-item suite.
func tauGrid() []float64 {
	g := make([]float64, 0, 102)
	for i := 0; i <= 100; i++ {
		g = append(g, float64(i)/100)
	}
	return append(g, 1.01)
}

// Calibrate picks the threshold of least held-out cost whose held-out
// routed quality keeps bar (a fraction, e.g. 0.95) of the best single
// target's, plus one standard error of that quality on this many items:
// the held-out estimate is itself a sample, and the bar must hold on the
// next one. oof[i][t] is target t's prediction for item i from a model
// that never saw item i; score[i][t] is what t actually scored (NaN: not
// run, the prediction stands in for it); cost[t] is t's cost per item.
func Calibrate(oof, score [][]float64, cost []float64, bar float64) Calibration {
	nt := len(cost)
	c := Calibration{Tau: 1.01, BestTarget: -1}
	if len(oof) == 0 || nt == 0 {
		return c
	}
	outcome := func(i, t int) float64 {
		if s := score[i][t]; !math.IsNaN(s) {
			return s
		}
		return oof[i][t]
	}
	for t := 0; t < nt; t++ {
		var q float64
		n := 0
		for i := range oof {
			if !math.IsNaN(score[i][t]) {
				q += score[i][t]
				n++
			}
		}
		if n > 0 && q/float64(n) > c.Best {
			c.Best, c.BestTarget = q/float64(n), t
		}
	}
	need := bar*c.Best + math.Sqrt(c.Best*(1-c.Best)/float64(len(oof)))
	bestCost := math.Inf(1)
	for _, tau := range tauGrid() {
		var q, k float64
		for i := range oof {
			t := choose(oof[i], cost, tau, c.BestTarget)
			if t < 0 {
				continue
			}
			q += outcome(i, t)
			k += cost[t]
		}
		q /= float64(len(oof))
		k /= float64(len(oof))
		if q >= need && (k < bestCost || k == bestCost && q > c.Quality) {
			bestCost = k
			c.Tau, c.Quality, c.Cost, c.Met = tau, q, k, true
		}
	}
	if !c.Met {
		// No threshold keeps the bar: the likeliest target for every prompt.
		c.Quality, c.Cost = 0, 0
		for i := range oof {
			if t := choose(oof[i], cost, c.Tau, c.BestTarget); t >= 0 {
				c.Quality += outcome(i, t)
				c.Cost += cost[t]
			}
		}
		c.Quality /= float64(len(oof))
		c.Cost /= float64(len(oof))
	}
	return c
}
