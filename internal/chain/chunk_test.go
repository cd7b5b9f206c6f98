package chain

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// TestChunkedProof: for blocks around and across chunk boundaries, every
// leaf's path from its chunk and the chunk roots is the path over all
// leaves.
func TestChunkedProof(t *testing.T) {
	for _, n := range []int{1, 2, 255, 256, 257, 511, 512, 513, 767, 1000, 1024, 1025, 2049} {
		leaves := make([]Hash, n)
		for i := range leaves {
			leaves[i] = sha256.Sum256(binary.BigEndian.AppendUint32(nil, uint32(i)))
		}
		roots := ChunkRoots(leaves)
		if Root(roots) != Root(leaves) {
			t.Fatalf("%d leaves: the tree over the chunk roots has another root", n)
		}
		for i := 0; i < n; i += max(1, n/97) {
			c := i / ChunkSize
			got, err := ChunkedProof(leaves[c*ChunkSize:min((c+1)*ChunkSize, n)], roots, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := InclusionProof(leaves, uint64(i))
			if len(got) != len(want) {
				t.Fatalf("%d leaves, leaf %d: %d hashes, want %d", n, i, len(got), len(want))
			}
			for k := range got {
				if got[k] != want[k] {
					t.Fatalf("%d leaves, leaf %d: hash %d differs", n, i, k)
				}
			}
		}
	}
	leaves := []Hash{{1}, {2}, {3}}
	if _, err := ChunkedProof(leaves[:2], ChunkRoots(leaves), 0); err == nil {
		t.Error("a chunk missing a leaf: no error")
	}
	if _, err := ChunkedProof(leaves, ChunkRoots(leaves), 300); err == nil {
		t.Error("an index beyond the chunks: no error")
	}
}

// TestSealKeepsChunkRoots: a sealed block's chunk roots are those of its
// entries, the same as a copy of the block without them computes, and its
// entries_root is the root over all leaves.
func TestSealKeepsChunkRoots(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	for _, n := range []int{0, 1, 256, 257, 600} {
		entries := make([][]byte, n)
		for i := range entries {
			entries[i] = binary.BigEndian.AppendUint32(nil, uint32(i))
		}
		b := Seal(Header{Height: 1}, entries, nil, key)
		leaves := EntryLeaves(entries)
		if b.Header.EntriesRoot != Root(leaves) {
			t.Fatalf("%d entries: entries_root is not the root over the leaves", n)
		}
		want := ChunkRoots(leaves)
		if n <= ChunkSize {
			want = nil
		}
		copied := &Block{Header: b.Header, Signature: b.Signature, Entries: b.Entries}
		for name, got := range map[string][]Hash{"sealed": b.ChunkRoots(), "copied": copied.ChunkRoots()} {
			if len(got) != len(want) {
				t.Fatalf("%d entries, %s block: %d chunk roots, want %d", n, name, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%d entries, %s block: chunk root %d differs", n, name, i)
				}
			}
		}
	}
}
