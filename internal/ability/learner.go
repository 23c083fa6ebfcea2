package ability

import (
	"math"
	"math/rand/v2"
)

// Logistic is one target's model: the chance that it answers a prompt
// correctly, σ(w·x + b). Logistic regression over hashed n-grams, rather
// than kNN or a centroid per tag: it needs no tags (live prompts carry
// none), predicts in one sparse dot product whatever the suite's size
// (kNN grows with it), and its outputs are probabilities that the
// calibration can threshold.
type Logistic struct {
	W []float32
	B float32
}

// Train settings: a few passes of SGD with L2 shrinkage. The rate decays
// per pass so late items do not undo early ones.
type Train struct {
	Epochs int     // 0: 6
	Rate   float64 // 0: 0.5
	L2     float64 // 0: 1e-5
	Seed   uint64
}

func (c Train) defaults() Train {
	if c.Epochs == 0 {
		c.Epochs = 6
	}
	if c.Rate == 0 {
		c.Rate = 0.5
	}
	if c.L2 == 0 {
		c.L2 = 1e-5
	}
	return c
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// Predict is the model's chance of success on x.
func (m *Logistic) Predict(x Vec) float64 {
	return sigmoid(float64(x.Dot(m.W) + m.B))
}

// Fit trains a model on the items listed in rows (indexes into xs and ys);
// ys are scores in [0, 1] (a partial score is a soft label).
func Fit(xs []Vec, ys []float64, rows []int, c Train) *Logistic {
	c = c.defaults()
	m := &Logistic{W: make([]float32, Dim)}
	if len(rows) == 0 {
		return m
	}
	// Start the bias at the base rate: a prompt unlike any seen gets the
	// target's average, not a coin toss.
	var mean float64
	for _, r := range rows {
		mean += ys[r]
	}
	mean = min(max(mean/float64(len(rows)), 0.01), 0.99)
	m.B = float32(math.Log(mean / (1 - mean)))
	order := append([]int(nil), rows...)
	rng := rand.New(rand.NewPCG(c.Seed, 0x5eed))
	for e := 0; e < c.Epochs; e++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		rate := c.Rate / (1 + float64(e))
		shrink := float32(1 - rate*c.L2)
		for _, r := range order {
			x := xs[r]
			g := float32(rate * (ys[r] - m.Predict(x)))
			for i, j := range x.Idx {
				m.W[j] = m.W[j]*shrink + g*x.Val[i]
			}
			m.B += g * 0.1 // the bias moves slower: it is shared by every item
		}
	}
	return m
}
