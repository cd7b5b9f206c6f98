package bitcoin

import (
	"bytes"
	"fmt"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// Bitcoin's block Merkle tree is not RFC 6962's: nodes are the double
// SHA-256 of the two children with no prefix, and a level of odd length
// pairs its last hash with itself. Hashes are in internal byte order (the
// reverse of how RPC and explorers print them).

func pair(l, r chainhash.Hash) chainhash.Hash {
	var b [64]byte
	copy(b[:32], l[:])
	copy(b[32:], r[:])
	return chainhash.DoubleHashH(b[:])
}

// MerkleBranch returns the sibling hashes from the transaction at index up
// to the root's children, for the block whose transactions have ids txids.
func MerkleBranch(txids []chainhash.Hash, index int) ([]chainhash.Hash, error) {
	if index < 0 || index >= len(txids) {
		return nil, fmt.Errorf("merkle branch: index %d of %d transactions", index, len(txids))
	}
	level := append([]chainhash.Hash(nil), txids...)
	var branch []chainhash.Hash
	for len(level) > 1 {
		if len(level)%2 == 1 {
			level = append(level, level[len(level)-1])
		}
		branch = append(branch, level[index^1])
		next := make([]chainhash.Hash, len(level)/2)
		for i := range next {
			next[i] = pair(level[2*i], level[2*i+1])
		}
		level, index = next, index/2
	}
	return branch, nil
}

// BranchRoot climbs from txid at index through branch and returns the
// root it leads to.
func BranchRoot(txid chainhash.Hash, index uint32, branch []chainhash.Hash) chainhash.Hash {
	h := txid
	for _, s := range branch {
		if index&1 == 1 {
			h = pair(s, h)
		} else {
			h = pair(h, s)
		}
		index >>= 1
	}
	return h
}

// CheckWork reports whether the header's hash meets the target its bits
// field claims. It does not say the target is the chain's: only a node or
// a trusted header can.
func CheckWork(h *wire.BlockHeader) error {
	target := blockchain.CompactToBig(h.Bits)
	if target.Sign() <= 0 {
		return fmt.Errorf("bitcoin header: bits %08x is not a positive target", h.Bits)
	}
	hash := h.BlockHash()
	if blockchain.HashToBig(&hash).Cmp(target) > 0 {
		return fmt.Errorf("bitcoin header: hash %s is above its target %064x", hash, target)
	}
	return nil
}

// ParseHeader decodes an 80-byte block header.
func ParseHeader(raw []byte) (*wire.BlockHeader, error) {
	if len(raw) != wire.MaxBlockHeaderPayload {
		return nil, fmt.Errorf("bitcoin header: %d bytes, want %d", len(raw), wire.MaxBlockHeaderPayload)
	}
	var h wire.BlockHeader
	if err := h.Deserialize(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("bitcoin header: %w", err)
	}
	return &h, nil
}

// HeaderBytes serializes h.
func HeaderBytes(h *wire.BlockHeader) []byte {
	var b bytes.Buffer
	_ = h.Serialize(&b) // writes to memory cannot fail
	return b.Bytes()
}

// TxBytes serializes tx without witness data: the bytes its id hashes.
func TxBytes(tx *wire.MsgTx) []byte {
	var b bytes.Buffer
	_ = tx.SerializeNoWitness(&b)
	return b.Bytes()
}

// ParseTx decodes a transaction serialized without witness data, and
// refuses one that carries any: a proof hashes the bytes as given.
func ParseTx(raw []byte) (*wire.MsgTx, error) {
	var tx wire.MsgTx
	if err := tx.DeserializeNoWitness(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("bitcoin transaction: %w", err)
	}
	if !bytes.Equal(TxBytes(&tx), raw) {
		return nil, fmt.Errorf("bitcoin transaction: %d bytes are not exactly one transaction without witness", len(raw))
	}
	return &tx, nil
}
