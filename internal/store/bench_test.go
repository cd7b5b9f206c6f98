package store

import (
	"fmt"
	"path/filepath"
	"testing"

	"cissan/internal/chain"
)

// BenchmarkLocate looks up groups of 1,000 new uids (the common case: an
// event not logged before) in a store of 500,000 uid records, one Locate
// at a time and through LocateAll, as the hub does for each commit group.
func BenchmarkLocate(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const blocks, per = 100, 5000
	for h := range blocks {
		raws := make([][]byte, per)
		uids := make([]string, per)
		for i := range raws {
			raws[i] = []byte("entry")
			uids[i] = fmt.Sprintf("%08x-stored-%d", (h*per+i)*2654435761%(1<<32), h*per+i)
		}
		batch := s.NewBatch()
		if err := batch.PutBlock(&chain.Block{Header: chain.Header{Height: uint64(h)}, Signature: make([]byte, 64), Entries: raws}, uids); err != nil {
			b.Fatal(err)
		}
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	// Settle into tables, so that no compaction runs while timing.
	if err := s.DB().Compact([]byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	group := func(n int) []string {
		out := make([]string, 1000)
		for i := range out {
			out[i] = fmt.Sprintf("%08x-new-%d", (n*1000+i)*2654435761%(1<<32), n*1000+i)
		}
		return out
	}
	b.Run("one-by-one", func(b *testing.B) {
		for n := 0; b.Loop(); n++ {
			for _, uid := range group(n) {
				if _, err := s.Locate(uid); err == nil {
					b.Fatal("found a new uid")
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/uid")
	})
	b.Run("LocateAll", func(b *testing.B) {
		for n := 0; b.Loop(); n++ {
			if err := s.LocateAll(group(n), func(_ int, locs []Located) error {
				if len(locs) > 0 {
					b.Fatal("found a new uid")
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/uid")
	})
}
