package bench

import (
	"math"
	"time"
)

// Percentiles of one latency, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

// histogram counts durations in buckets 1% wide from 1 µs up, so that a run
// of any length measures its percentiles in constant memory (a slice of
// every sample grew the bench's own heap by 48 bytes per order), each within
// 1% of the exact one.
type histogram struct {
	counts []uint64
	n      int
	max    time.Duration
}

const histogramGrowth = 1.01 // each bucket's upper bound over its lower one

func (h *histogram) add(d time.Duration) {
	us := max(float64(d)/float64(time.Microsecond), 1)
	i := int(math.Log(us) / math.Log(histogramGrowth))
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

// percentiles reports each quantile as the upper bound of its bucket (never
// above the largest duration seen), in milliseconds.
func (h *histogram) percentiles() Percentiles {
	if h.n == 0 {
		return Percentiles{}
	}
	maxMS := float64(h.max.Microseconds()) / 1000
	at := func(q float64) float64 {
		rank := uint64(math.Ceil(q * float64(h.n)))
		var seen uint64
		for i, c := range h.counts {
			if seen += c; seen >= rank {
				us := min(math.Pow(histogramGrowth, float64(i+1)), float64(h.max.Microseconds()))
				return math.Round(us) / 1000
			}
		}
		return maxMS
	}
	return Percentiles{P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: maxMS, N: h.n}
}
