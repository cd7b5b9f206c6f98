package chain

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// History is the RFC 6962 tree over block leaves, kept as a compact range
// (one hash per set bit of the size), so a node can compute the next
// header's history_root in O(log n) memory however long the chain grows.
type History struct {
	r *compact.Range
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// NewHistory returns the history of an empty chain.
func NewHistory() *History { return &History{r: rangeFactory.NewEmptyRange(0)} }

// Size returns the number of blocks appended.
func (h *History) Size() uint64 { return h.r.End() }

// Append adds the next block's hash.
func (h *History) Append(blockHash Hash) {
	leaf := BlockLeaf(blockHash)
	if err := h.r.Append(leaf[:], nil); err != nil {
		panic(fmt.Sprintf("history append: %v", err)) // only fails on malformed ranges, which cannot be built here
	}
}

// Root returns the root over every block appended so far.
func (h *History) Root() Hash {
	if h.r.End() == 0 {
		return EmptyRoot
	}
	root, err := h.r.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("history root: %v", err))
	}
	var out Hash
	copy(out[:], root)
	return out
}
