package bench

import (
	"math"
	"slices"
	"time"
)

// Quantile is the q-quantile (0 ≤ q ≤ 1) of xs, interpolating linearly
// between the closest ranks; NaN for no values. xs is not modified.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (pos-float64(lo))*(s[hi]-s[lo])
}

// Median is the 0.5-quantile: on a noisy machine it says more than the
// mean, which one descheduled run can drag anywhere.
func Median(xs []float64) float64 { return Quantile(xs, 0.5) }

// Ms converts durations to milliseconds, for Quantile.
func Ms(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// MsDuration turns milliseconds back into a duration.
func MsDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
