package chain

import "fmt"

// ChunkSize is the number of leaves in a chunk: the aligned perfect
// subtree a node stores the root of, so that a proof in a large block
// needs only the entries of one chunk.
//
// In an RFC 6962 tree every aligned range of 2^k leaves that the tree
// holds whole is a subtree, and so is the last, partial range: each split
// falls on a multiple of the largest power of two below the size, which
// for more than ChunkSize leaves is a multiple of ChunkSize. The tree over
// the chunk roots, taken as leaves, is therefore the upper part of the
// tree over all leaves.
const ChunkSize = 256

// ChunkRoots returns the root of every chunk of leaves, in order.
func ChunkRoots(leaves []Hash) []Hash {
	out := make([]Hash, 0, (len(leaves)+ChunkSize-1)/ChunkSize)
	for i := 0; i < len(leaves); i += ChunkSize {
		out = append(out, Root(leaves[i:min(i+ChunkSize, len(leaves))]))
	}
	return out
}

// ChunkedProof returns the audit path of leaf index from the leaves of
// its own chunk and the roots of every chunk: the same path as
// InclusionProof over all leaves.
func ChunkedProof(chunkLeaves []Hash, roots []Hash, index uint64) ([]Hash, error) {
	c := index / ChunkSize
	if c >= uint64(len(roots)) {
		return nil, fmt.Errorf("chunked proof: index %d is in chunk %d, of %d", index, c, len(roots))
	}
	if Root(chunkLeaves) != roots[c] {
		return nil, fmt.Errorf("chunked proof: chunk %d's leaves do not hash to its stored root", c)
	}
	within, err := InclusionProof(chunkLeaves, index%ChunkSize)
	if err != nil {
		return nil, err
	}
	above, err := InclusionProof(roots, c)
	if err != nil {
		return nil, err
	}
	return append(within, above...), nil
}
