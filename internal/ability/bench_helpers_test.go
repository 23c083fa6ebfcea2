package ability

import (
	"slices"
	"time"
)

var epoch = time.Now()

func nanotime() int64 { return int64(time.Since(epoch)) }

func p99(ns []int64) int64 {
	if len(ns) == 0 {
		return 0
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	return s[len(s)*99/100]
}
