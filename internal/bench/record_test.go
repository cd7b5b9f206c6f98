package bench

import (
	"errors"
	"math"
	"testing"
)

// TestRecordKeepsEverySampleInOrder writes more samples than the record's
// buffer holds, with extreme field values, and reads them back.
func TestRecordKeepsEverySampleInOrder(t *testing.T) {
	r, err := newRecord()
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	const n = 100_000 // 3.2 MB, over three buffers
	want := func(i int) sample {
		return sample{dev: int32(i % 7), seq: int32(i), ms: math.MaxInt64 - int64(i), sent: -int64(i), ackUs: math.MinInt32 + int32(i), size: int32(i * 3)}
	}
	for i := range n {
		r.add(want(i))
	}
	for pass := range 2 { // a second pass reads the same
		i := 0
		if err := r.each(func(s sample) error {
			if s != want(i) {
				t.Fatalf("pass %d sample %d: %+v, want %+v", pass, i, s, want(i))
			}
			i++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if i != n {
			t.Fatalf("pass %d: %d samples, want %d", pass, i, n)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := r.each(func(sample) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("each went on after an error: %v after %d calls", err, calls)
	}
}
