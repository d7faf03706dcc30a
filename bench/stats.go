package bench

import (
	"slices"
	"time"
)

// Dist summarises a sample of durations. Quantiles are nearest-rank.
type Dist struct {
	N             int
	Min, P50, P90 time.Duration
	P99, Max      time.Duration
	Mean          time.Duration
}

// Summarise returns the distribution of samples.
func Summarise(samples []time.Duration) Dist {
	if len(samples) == 0 {
		return Dist{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Dist{
		N: len(s), Min: s[0], Max: s[len(s)-1], Mean: sum / time.Duration(len(s)),
		P50: Quantile(s, 0.50), P90: Quantile(s, 0.90), P99: Quantile(s, 0.99),
	}
}

// Quantile is the nearest-rank q-quantile of sorted.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
