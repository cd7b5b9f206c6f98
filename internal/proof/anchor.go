package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"cissan/internal/bitcoin"
	"cissan/internal/chain"
)

// AnchorTag starts the data of the OP_RETURN output that anchors a block;
// the block hash follows it.
const AnchorTag = "cissan"

// AnchorData returns the OP_RETURN data that anchors the block with hash h.
func AnchorData(h chain.Hash) []byte {
	return append([]byte(AnchorTag), h[:]...)
}

// Anchor is the Bitcoin part of a bundle (SPEC.md section 11): it carries
// the bundle's block to a Bitcoin block header. Bitcoin hashes in
// tx_path are in internal byte order, as they are hashed; txid and
// bitcoin_block_hash are in the reversed order Bitcoin software prints.
type Anchor struct {
	HistoryPath      []string `json:"history_path"`
	AnchoredHeader   string   `json:"anchored_header"`
	Tx               string   `json:"tx"`
	TxID             string   `json:"txid"`
	TxIndex          uint32   `json:"tx_index"`
	TxPath           []string `json:"tx_path"`
	BitcoinHeader    string   `json:"bitcoin_header"`
	BitcoinBlockHash string   `json:"bitcoin_block_hash"`
	BitcoinHeight    int64    `json:"bitcoin_height"`
}

// AnchorResult is what a verified Bitcoin part proves: the block existed
// no later than the Bitcoin block. HeaderChecked is false until
// CheckBitcoin compares the Bitcoin block with the real chain: until then
// the header's proof of work is checked but not that Bitcoin holds it.
type AnchorResult struct {
	AnchoredHeight   uint64
	AnchoredHash     chain.Hash
	TxID             chainhash.Hash
	BitcoinBlockHash chainhash.Hash
	BitcoinHeight    int64
	BitcoinTime      time.Time
	HeaderChecked    bool
}

// verifyAnchor checks a's claims for the block with header h and hash
// blockHash, each step as SPEC.md section 11 gives it.
func verifyAnchor(raw json.RawMessage, h *chain.Header, blockHash chain.Hash, r *Result) error {
	var a Anchor
	if err := strictJSON(raw, &a); err != nil {
		return invalid("anchor", "%v", err)
	}
	ar := &AnchorResult{}

	ab, err := lowerHex(a.AnchoredHeader)
	if err != nil {
		return invalid("anchor history", "anchored_header: %v", err)
	}
	ah, err := chain.DecodeHeader(ab)
	if err != nil {
		return invalid("anchor history", "anchored_header: %v", err)
	}
	if ah.Network != h.Network {
		return invalid("anchor history", "anchored header is for network %s, not %s", ah.Network, h.Network)
	}
	ar.AnchoredHeight, ar.AnchoredHash = ah.Height, sha256.Sum256(ab)
	path, err := hashes("anchor history", "history_path", a.HistoryPath)
	if err != nil {
		return err
	}
	switch {
	case ah.Height < h.Height:
		return invalid("anchor history", "anchored block %d is older than the block %d", ah.Height, h.Height)
	case ah.Height == h.Height:
		if ar.AnchoredHash != blockHash || len(path) != 0 {
			return invalid("anchor history", "anchored block at the same height %d must be the block itself, with an empty history_path", h.Height)
		}
		r.checked("the block itself is the anchored block")
	default:
		if err := chain.VerifyInclusion(h.Height, ah.Height, chain.BlockLeaf(blockHash), path, ah.HistoryRoot); err != nil {
			return invalid("anchor history", "block %d in the history of block %d: %v", h.Height, ah.Height, err)
		}
		r.checked("block %d is leaf %d of the history tree of anchored block %d (hash %x, audit path of %d hashes)",
			h.Height, h.Height, ah.Height, ar.AnchoredHash, len(path))
	}

	txb, err := lowerHex(a.Tx)
	if err != nil {
		return invalid("anchor transaction", "tx: %v", err)
	}
	if len(txb) == 64 {
		// 64 bytes could be an inner node of the Merkle tree posing as a
		// transaction; anchor transactions are longer.
		return invalid("anchor transaction", "a 64-byte transaction is ambiguous in Bitcoin's Merkle tree")
	}
	tx, err := bitcoin.ParseTx(txb)
	if err != nil {
		return invalid("anchor transaction", "%v", err)
	}
	if !carries(tx.TxOut, ar.AnchoredHash) {
		return invalid("anchor transaction", "no OP_RETURN output carries %q and the anchored block hash %x", AnchorTag, ar.AnchoredHash)
	}
	ar.TxID = chainhash.DoubleHashH(txb)
	if a.TxID != ar.TxID.String() {
		return invalid("anchor transaction", "txid %s, but the transaction hashes to %s", a.TxID, ar.TxID)
	}
	r.checked("Bitcoin transaction %s (%d bytes without witness) carries the anchored block hash in an OP_RETURN output", ar.TxID, len(txb))

	hb, err := lowerHex(a.BitcoinHeader)
	if err != nil {
		return invalid("bitcoin header", "%v", err)
	}
	bh, err := bitcoin.ParseHeader(hb)
	if err != nil {
		return invalid("bitcoin header", "%v", err)
	}
	if err := bitcoin.CheckWork(bh); err != nil {
		return invalid("bitcoin header", "%v", err)
	}
	ar.BitcoinBlockHash, ar.BitcoinHeight, ar.BitcoinTime = bh.BlockHash(), a.BitcoinHeight, bh.Timestamp.UTC()
	if a.BitcoinBlockHash != ar.BitcoinBlockHash.String() {
		return invalid("bitcoin header", "bitcoin_block_hash %s, but the header hashes to %s", a.BitcoinBlockHash, ar.BitcoinBlockHash)
	}
	if a.BitcoinHeight < 0 {
		return invalid("bitcoin header", "bitcoin_height %d is negative", a.BitcoinHeight)
	}
	branch := make([]chainhash.Hash, len(a.TxPath))
	for i, s := range a.TxPath {
		b, err := decodeHex(s, chainhash.HashSize)
		if err != nil {
			return invalid("bitcoin inclusion", "tx_path[%d]: %v", i, err)
		}
		copy(branch[i][:], b)
	}
	if len(branch) < 32 && a.TxIndex>>len(branch) != 0 {
		return invalid("bitcoin inclusion", "tx_index %d does not fit a branch of %d hashes", a.TxIndex, len(branch))
	}
	if root := bitcoin.BranchRoot(ar.TxID, a.TxIndex, branch); root != bh.MerkleRoot {
		return invalid("bitcoin inclusion", "the transaction's branch leads to %s, the header's Merkle root is %s", root, bh.MerkleRoot)
	}
	r.checked("the transaction is number %d in Bitcoin block %s at height %d, mined %s (header proof of work checks)",
		a.TxIndex, ar.BitcoinBlockHash, ar.BitcoinHeight, ar.BitcoinTime.Format(time.RFC3339))
	r.Anchor = ar
	return nil
}

// AnchorScript is the one output script that anchors the block with hash
// h: OP_RETURN (0x6a), then the 38 bytes of AnchorData in their shortest
// push (0x26: push the next 38 bytes), as txscript.NullDataScript writes
// it. An OP_PUSHDATA1 push of the same bytes is another script, and is not
// an anchor: a verifier takes one form only, as SPEC.md section 11 says.
func AnchorScript(h chain.Hash) []byte {
	return append([]byte{txscript.OP_RETURN, txscript.OP_DATA_38}, AnchorData(h)...)
}

// carries reports whether an output's script is exactly AnchorScript(hash).
func carries(outs []*wire.TxOut, hash chain.Hash) bool {
	want := AnchorScript(hash)
	for _, o := range outs {
		if bytes.Equal(o.PkScript, want) {
			return true
		}
	}
	return false
}

// hashes decodes a list of 32-byte hex hashes.
func hashes(check, member string, in []string) ([]chain.Hash, error) {
	out := make([]chain.Hash, len(in))
	for i, s := range in {
		b, err := decodeHex(s, sha256.Size)
		if err != nil {
			return nil, invalid(check, "%s[%d]: %v", member, i, err)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// CheckBitcoin compares the Bitcoin block of a verified anchor with the
// hash the real chain has at that height (from a trusted header or a
// node). Until it passes, a bundle proves a timestamp only as far as the
// header's proof of work goes.
func (r *Result) CheckBitcoin(atHeight chainhash.Hash, source string) error {
	if r.Anchor == nil {
		return invalid("bitcoin chain", "the bundle has no Bitcoin anchor")
	}
	if atHeight != r.Anchor.BitcoinBlockHash {
		return invalid("bitcoin chain", "%s has block %s at height %d, the proof names %s", source, atHeight, r.Anchor.BitcoinHeight, r.Anchor.BitcoinBlockHash)
	}
	r.Anchor.HeaderChecked = true
	r.checked("%s has Bitcoin block %s at height %d", source, atHeight, r.Anchor.BitcoinHeight)
	return nil
}
