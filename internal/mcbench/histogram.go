package mcbench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram bucket layout: values below 2^subBits have a bucket each; every
// higher power-of-two range is split into 2^(subBits-1) equal buckets, so a
// bucket is at most 1/128 of its values wide.
const (
	subBits    = 8
	subCount   = 1 << subBits
	halfCount  = subCount / 2
	numBuckets = (64-subBits)*halfCount + subCount
)

// Histogram counts durations in log-linear buckets, HDR-style: Record is
// constant-time and allocation-free, and a quantile is exact to within
// 1/128 of its value (never below it). The zero value is empty and ready;
// a Histogram is not safe for concurrent use: keep one per goroutine and
// Merge them.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      float64
	min, max uint64
}

// bucketOf returns the bucket of v.
func bucketOf(v uint64) int {
	m := bits.Len64(v)
	if m <= subBits {
		return int(v)
	}
	shift := m - subBits
	return shift*halfCount + int(v>>shift)
}

// bucketMax returns the largest value of bucket i.
func bucketMax(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i/halfCount - 1
	q := uint64(i - shift*halfCount)
	return q<<shift + (1<<shift - 1)
}

// Record adds one duration; negative ones count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds the counts of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest duration recorded, 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest duration recorded, 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean duration, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the duration at quantile q (0.99 for p99) by nearest
// rank: the largest value of the bucket holding the ceil(q·n)-th smallest
// duration, clamped to Min and Max. It returns 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(1, min(rank, h.n))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(max(h.min, min(bucketMax(i), h.max)))
		}
	}
	return time.Duration(h.max)
}
