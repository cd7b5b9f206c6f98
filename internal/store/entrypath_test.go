package store

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/vfs"

	"cissan/internal/chain"
)

// TestEntryPath: a proof's path, read from one chunk of a big block and
// its stored chunk roots, or from the whole of a small block, is the path
// over all the block's entries.
func TestEntryPath(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for h, n := range []int{3, 600} {
		entries := make([]string, n)
		uids := make([]string, n)
		for i := range entries {
			entries[i] = fmt.Sprintf("entry %d of block %d", i, h)
			uids[i] = fmt.Sprintf("u%d-%d", h, i)
		}
		blk := testBlock(uint64(h), entries...)
		put(t, s, blk, uids...)
		roots, err := s.ChunkRoots(uint64(h))
		if err != nil {
			t.Fatal(err)
		}
		if (roots != nil) != (n > chain.ChunkSize) {
			t.Fatalf("block of %d entries: chunk roots %v", n, roots)
		}
		leaves := chain.EntryLeaves(blk.Entries)
		for _, i := range []int{0, 1, n / 2, n - 1, min(255, n-1), min(256, n-1), min(512, n-1)} {
			entry, path, err := s.EntryPath(uint64(h), uint32(i), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := chain.InclusionProof(leaves, uint64(i))
			if string(entry) != entries[i] || fmt.Sprint(path) != fmt.Sprint(want) {
				t.Fatalf("block of %d entries, entry %d: got %q and another path than over all entries", n, i, entry)
			}
		}
		if _, _, err := s.EntryPath(uint64(h), uint32(n), uint64(n)); err == nil {
			t.Errorf("block of %d entries: a path for entry %d, past the end", n, n)
		}
	}
}
