package evalrun

import (
	"math"
	"slices"
	"time"
)

// z975 is the standard normal's 97.5th percentile: a two-sided 95% interval.
const z975 = 1.959963984540054

// Wilson is the 95% Wilson score interval of k passes in n trials: unlike
// p ± z·se it stays within 0–1 and is sound at small n and at 0 or n passes.
func Wilson(k, n int) (low, high float64) {
	if n <= 0 {
		return 0, 1
	}
	p, nf, z2 := float64(k)/float64(n), float64(n), z975*z975
	denom := 1 + z2/nf
	center := (p + z2/(2*nf)) / denom
	half := z975 / denom * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return max(0, center-half), min(1, center+half)
}

// TInterval is the 95% Student t interval of the mean of fractional
// scores, clamped to 0–1; one score says nothing of the spread: 0–1.
func TInterval(scores []float64) (mean, low, high float64) {
	n := len(scores)
	if n == 0 {
		return 0, 0, 1
	}
	for _, s := range scores {
		mean += s
	}
	mean /= float64(n)
	if n == 1 {
		return mean, 0, 1
	}
	var ss float64
	for _, s := range scores {
		ss += (s - mean) * (s - mean)
	}
	half := TQuantile975(n-1) * math.Sqrt(ss/float64(n-1)/float64(n))
	return mean, max(0, mean-half), min(1, mean+half)
}

// TQuantile975 is Student's t 97.5th percentile for df degrees of freedom,
// found by bisection on the t distribution's CDF.
func TQuantile975(df int) float64 {
	lo, hi := 0.0, 1000.0
	for range 200 {
		mid := (lo + hi) / 2
		if tCDF(mid, float64(df)) < 0.975 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// tCDF is P(T ≤ t) for t ≥ 0: 1 − ½·I_{ν/(ν+t²)}(ν/2, ½).
func tCDF(t, nu float64) float64 {
	return 1 - 0.5*regIncBeta(nu/(nu+t*t), nu/2, 0.5)
}

// regIncBeta is the regularized incomplete beta function I_x(a, b), by
// its continued fraction (modified Lentz), on the side where it converges.
func regIncBeta(x, a, b float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	la, _ := math.Lgamma(a + b)
	lb, _ := math.Lgamma(a)
	lc, _ := math.Lgamma(b)
	front := math.Exp(la - lb - lc + a*math.Log(x) + b*math.Log(1-x))
	if x > (a+1)/(a+b+2) {
		return 1 - front*betaCF(1-x, b, a)/b
	}
	return front * betaCF(x, a, b) / a
}

func betaCF(x, a, b float64) float64 {
	const tiny = 1e-300
	c, d := 1.0, 1-(a+b)*x/(a+1)
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= 300; m++ {
		mf := float64(m)
		for _, num := range []float64{
			mf * (b - mf) * x / ((a + 2*mf - 1) * (a + 2*mf)),
			-(a + mf) * (a + b + mf) * x / ((a + 2*mf) * (a + 2*mf + 1)),
		} {
			d = 1 + num*d
			if math.Abs(d) < tiny {
				d = tiny
			}
			c = 1 + num/c
			if math.Abs(c) < tiny {
				c = tiny
			}
			d = 1 / d
			h *= d * c
		}
		if math.Abs(d*c-1) < 1e-15 {
			break
		}
	}
	return h
}

// Percentile is the nearest-rank q-th percentile (0 < q ≤ 1): the smallest
// value with at least q of the values at or below it.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(q * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Point is a model on the quality × cost plane.
type Point struct {
	Quality, Cost float64
}

// Pareto marks the points no other point dominates: none is at least as
// good in quality and at most as dear, and strictly better in one.
func Pareto(ps []Point) []bool {
	out := make([]bool, len(ps))
	for i, p := range ps {
		out[i] = true
		for j, o := range ps {
			if j != i && o.Quality >= p.Quality && o.Cost <= p.Cost && (o.Quality > p.Quality || o.Cost < p.Cost) {
				out[i] = false
				break
			}
		}
	}
	return out
}
