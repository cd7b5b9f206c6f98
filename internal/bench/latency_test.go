package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The quantiles of the buckets are those of the sorted samples, to within
// half a bucket; latencies past the last bucket and below zero count at
// the ends.
func TestLatencyQuantiles(t *testing.T) {
	var l latencies
	if p50, p99 := l.quantiles(); p50 != 0 || p99 != 0 {
		t.Fatalf("no samples: %v, %v", p50, p99)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var all []float64
	for range 100_000 {
		ms := r.ExpFloat64() * 300
		all = append(all, ms)
		l.add(ms)
	}
	slices.Sort(all)
	p50, p99 := l.quantiles()
	want50, want99 := all[len(all)/2], all[len(all)*99/100]
	if math.Abs(p50-want50) > latencyStepMs/2 || math.Abs(p99-want99) > latencyStepMs/2 {
		t.Fatalf("quantiles %.3f, %.3f; sorted samples give %.3f, %.3f", p50, p99, want50, want99)
	}
	var ends latencies
	ends.add(-5)
	ends.add(1e9)
	if lo, hi := ends.rank(0), ends.rank(1); math.Abs(lo-latencyStepMs/2) > 1e-9 || math.Abs(hi-(latencyBuckets-0.5)*latencyStepMs) > 1e-6 {
		t.Fatalf("ends at %v and %v", lo, hi)
	}
}
