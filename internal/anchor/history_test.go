package anchor

import (
	"path/filepath"
	"testing"

	"cissan/internal/chain"
)

// headers is a chain of headers that differ in height only: enough for
// the history tree, which hashes their hashes.
type headers uint64

func (n headers) Height() uint64 { return uint64(n) }

func (n headers) Header(h uint64) (*chain.Header, error) {
	return &chain.Header{Height: h, MintTimeMs: int64(h)}, nil
}

// TestHistoryPath checks the stored tree's audit paths against the ones
// computed from every leaf, for every block of trees of sizes 1 to 70,
// with the tree grown in steps and reopened from its file between them.
func TestHistoryPath(t *testing.T) {
	const n = 70
	path := filepath.Join(t.TempDir(), "anchor.db")
	var leaves []chain.Hash
	for h := range uint64(n) {
		hdr, _ := headers(n).Header(h)
		leaves = append(leaves, chain.BlockLeaf(hdr.Hash()))
	}
	open := func() *Service {
		d, err := openDB(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.close() })
		return &Service{cfg: Config{Chain: headers(n)}, db: d}
	}
	s := open()
	for a := uint64(1); a <= n; a++ {
		if a%17 == 0 {
			s = open() // the right edge comes back from the file
		}
		for h := range a {
			got, err := s.historyPath(h, a)
			if err != nil {
				t.Fatal(err)
			}
			want, err := chain.InclusionProof(leaves[:a], h)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("path of %d in %d: %d hashes, want %d", h, a, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("path of %d in %d: hash %d differs", h, a, i)
				}
			}
			if err := chain.VerifyInclusion(h, a, leaves[h], got, chain.Root(leaves[:a])); err != nil {
				t.Fatalf("path of %d in %d: %v", h, a, err)
			}
		}
	}
}

// BenchmarkHistoryPath measures the audit path of a block in the history
// of a million blocks, as a proof of an old event needs.
func BenchmarkHistoryPath(b *testing.B) {
	const n = 1 << 20
	d, err := openDB(filepath.Join(b.TempDir(), "anchor.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer d.close()
	s := &Service{cfg: Config{Chain: headers(n)}, db: d}
	if _, err := s.historyPath(0, n); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.historyPath(uint64(i*7919)%n, n); err != nil {
			b.Fatal(err)
		}
	}
}
