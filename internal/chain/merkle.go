package chain

import (
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Hash is a SHA-256 digest.
type Hash = [32]byte

// EmptyRoot is the RFC 6962 hash of an empty tree: SHA-256 of no bytes.
var EmptyRoot = sha256.Sum256(nil)

// hashChildren is RFC 6962's interior node hash: SHA-256(0x01 || l || r).
func hashChildren(l, r Hash) Hash {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:], l[:])
	copy(buf[33:], r[:])
	return sha256.Sum256(buf[:])
}

// BlockLeaf is the leaf hash of a block in a history tree:
// SHA-256(0x00 || block hash).
func BlockLeaf(blockHash Hash) Hash {
	var buf [33]byte
	copy(buf[1:], blockHash[:])
	return sha256.Sum256(buf[:])
}

// Root returns the RFC 6962 Merkle tree hash over leaf hashes. It keeps a
// stack of perfect subtree roots, so it runs in one pass with O(log n)
// memory and agrees with the recursive definition for every size.
func Root(leaves []Hash) Hash {
	if len(leaves) == 0 {
		return EmptyRoot
	}
	var stack [64]Hash
	var sizes [64]uint64
	n := 0
	for _, l := range leaves {
		stack[n], sizes[n] = l, 1
		n++
		for n >= 2 && sizes[n-1] == sizes[n-2] {
			stack[n-2] = hashChildren(stack[n-2], stack[n-1])
			sizes[n-2] *= 2
			n--
		}
	}
	// Fold the remaining perfect subtrees right to left, as RFC 6962 splits
	// at the largest power of two.
	r := stack[n-1]
	for i := n - 2; i >= 0; i-- {
		r = hashChildren(stack[i], r)
	}
	return r
}

// InclusionProof returns the RFC 6962 audit path for leaf index in the tree
// over leaves, ordered from the leaf's sibling upwards.
func InclusionProof(leaves []Hash, index uint64) ([]Hash, error) {
	if index >= uint64(len(leaves)) {
		return nil, fmt.Errorf("inclusion proof: index %d not in tree of size %d", index, len(leaves))
	}
	var path []Hash
	for len(leaves) > 1 {
		k := split(uint64(len(leaves)))
		if index < k {
			path = append(path, Root(leaves[k:]))
			leaves = leaves[:k]
		} else {
			path = append(path, Root(leaves[:k]))
			leaves = leaves[k:]
			index -= k
		}
	}
	// Built top-down; verifiers expect bottom-up.
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path, nil
}

// split returns the largest power of two smaller than n (n > 1).
func split(n uint64) uint64 {
	k := uint64(1)
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// VerifyInclusion checks an audit path with transparency-dev/merkle's
// RFC 6962 verifier.
func VerifyInclusion(index, size uint64, leaf Hash, path []Hash, root Hash) error {
	p := make([][]byte, len(path))
	for i := range path {
		p[i] = path[i][:]
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf[:], p, root[:]); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	return nil
}
