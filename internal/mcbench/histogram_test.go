package mcbench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The bucket layout is continuous and monotone, and bucketMax is the
// largest value of its bucket.
func TestBuckets(t *testing.T) {
	vals := []uint64{0, 1, 255, 256, 257, 258, 511, 512, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64 - 1, math.MaxUint64}
	for _, v := range vals {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		if m := bucketMax(i); m < v || (m < math.MaxUint64 && bucketOf(m+1) != i+1) {
			t.Errorf("bucketOf(%d) = %d with max %d: not the bucket's largest value", v, i, m)
		}
		if i > 0 && bucketOf(bucketMax(i-1)+1) != i {
			t.Errorf("bucket %d does not start after bucket %d", i, i-1)
		}
	}
	if bucketOf(math.MaxUint64) != numBuckets-1 {
		t.Errorf("largest value in bucket %d, want %d", bucketOf(math.MaxUint64), numBuckets-1)
	}
}

// Quantiles match a sorted reference within the bucket precision: never
// below it, at most 1/128 above.
func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform-small": func() time.Duration { return time.Duration(rng.IntN(300)) },
		"uniform-wide":  func() time.Duration { return time.Duration(rng.Int64N(int64(time.Second))) },
		"lognormal": func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5 + 11)) // around 60µs, long tail
		},
		"bimodal": func() time.Duration {
			if rng.IntN(100) == 0 {
				return 5*time.Millisecond + time.Duration(rng.IntN(1e6))
			}
			return 20*time.Microsecond + time.Duration(rng.IntN(1e4))
		},
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			ref := make([]time.Duration, 0, 100000)
			for range 100000 {
				d := gen()
				h.Record(d)
				ref = append(ref, d)
			}
			slices.Sort(ref)
			if h.Count() != uint64(len(ref)) || h.Min() != ref[0] || h.Max() != ref[len(ref)-1] {
				t.Fatalf("count/min/max %d/%v/%v, want %d/%v/%v", h.Count(), h.Min(), h.Max(), len(ref), ref[0], ref[len(ref)-1])
			}
			for _, q := range []float64{0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
				rank := max(1, int(math.Ceil(q*float64(len(ref)))))
				want := ref[rank-1]
				got := h.Quantile(q)
				if got < want || got > want+want/128 {
					t.Errorf("q%v = %v, want %v (+1/128)", q, got, want)
				}
			}
			var sum float64
			for _, d := range ref {
				sum += float64(d)
			}
			if mean := sum / float64(len(ref)); math.Abs(float64(h.Mean())-mean) > 1 {
				t.Errorf("mean %v, want %v", h.Mean(), time.Duration(mean))
			}
		})
	}
}

// Merging histograms equals recording everything into one.
func TestHistogramMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all, a, b, empty Histogram
	for i := range 10000 {
		d := time.Duration(rng.Int64N(int64(10 * time.Millisecond)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&empty)
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&empty)
	if m.counts != all.counts || m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() {
		t.Fatal("merged histogram differs from the one recorded directly")
	}
	if m.Quantile(0.99) != all.Quantile(0.99) {
		t.Fatalf("p99 %v, want %v", m.Quantile(0.99), all.Quantile(0.99))
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram reports non-zero values")
	}
	h.Record(-5)
	h.Record(time.Duration(math.MaxInt64))
	if h.Min() != 0 || h.Quantile(0) != 0 || h.Quantile(1) != time.Duration(math.MaxInt64) {
		t.Fatalf("min %v q0 %v q1 %v", h.Min(), h.Quantile(0), h.Quantile(1))
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	d := time.Duration(1)
	for b.Loop() {
		h.Record(d)
		d = d*7 + 13&(1<<30-1)
	}
}
