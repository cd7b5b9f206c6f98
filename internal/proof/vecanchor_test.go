package proof_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"cissan/internal/bitcoin"
	"cissan/internal/chain"
	"cissan/internal/proof"
)

// vecAnchor builds the vectors' Bitcoin part for the block at height h:
// the newest vector block is anchored by a transaction (second of three)
// in a Bitcoin block whose header has regtest's easy target, mined here by
// trying nonces. Nothing in it is signed: a proof checks hashes, not the
// transaction's scripts.
func vecAnchor(blocks []*chain.Block, h uint64) (*proof.Anchor, error) {
	a := uint64(len(blocks) - 1)
	anchored := blocks[a].Header
	var leaves []chain.Hash
	for _, b := range blocks[:a] {
		leaves = append(leaves, chain.BlockLeaf(b.Header.Hash()))
	}
	path, err := chain.InclusionProof(leaves, h)
	if err != nil {
		return nil, err
	}

	data, err := txscript.NullDataScript(proof.AnchorData(anchored.Hash()))
	if err != nil {
		return nil, err
	}
	funding := sha256.Sum256([]byte("cissan vectors: funding"))
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Hash: funding, Index: 0}, Sequence: wire.MaxTxInSequenceNum - 2})
	tx.AddTxOut(wire.NewTxOut(0, data))
	tx.AddTxOut(wire.NewTxOut(99_000, append([]byte{0x00, 0x14}, make([]byte, 20)...)))

	coinbase := wire.NewMsgTx(1)
	coinbase.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Index: wire.MaxPrevOutIndex}, SignatureScript: []byte{0x02, 0xe8, 0x03}, Sequence: wire.MaxTxInSequenceNum})
	coinbase.AddTxOut(wire.NewTxOut(5_000_000_000, []byte{txscript.OP_TRUE}))
	other := wire.NewMsgTx(2)
	other.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Hash: sha256.Sum256([]byte("cissan vectors: other")), Index: 1}, Sequence: wire.MaxTxInSequenceNum})
	other.AddTxOut(wire.NewTxOut(12_345, []byte{txscript.OP_TRUE}))

	txids := []chainhash.Hash{coinbase.TxHash(), tx.TxHash(), other.TxHash()}
	branch, err := bitcoin.MerkleBranch(txids, 1)
	if err != nil {
		return nil, err
	}
	hdr := wire.BlockHeader{
		Version: 0x20000000, PrevBlock: chainhash.DoubleHashH([]byte("cissan vectors: previous")),
		MerkleRoot: bitcoin.BranchRoot(txids[1], 1, branch),
		Timestamp:  time.UnixMilli(vecMintTimes[a]).Add(10 * time.Minute).Truncate(time.Second), Bits: 0x207fffff,
	}
	for bitcoin.CheckWork(&hdr) != nil {
		hdr.Nonce++
	}
	out := &proof.Anchor{
		HistoryPath: hashList(path), AnchoredHeader: hex.EncodeToString(anchored.Encode()),
		Tx: hex.EncodeToString(bitcoin.TxBytes(tx)), TxID: tx.TxHash().String(), TxIndex: 1,
		BitcoinHeader: hex.EncodeToString(bitcoin.HeaderBytes(&hdr)), BitcoinBlockHash: hdr.BlockHash().String(),
		BitcoinHeight: 1000,
	}
	for _, b := range branch {
		out.TxPath = append(out.TxPath, hex.EncodeToString(b[:]))
	}
	if len(out.Tx) == 128 {
		return nil, fmt.Errorf("vector transaction is 64 bytes")
	}
	return out, nil
}

// anchoredVector returns the vectors' anchored bundle and network.
func anchoredVector(b *testing.B) (*proof.Bundle, *chain.Network) {
	blocks, net, hub, err := vectorChain()
	if err != nil {
		b.Fatal(err)
	}
	anc, err := vecAnchor(blocks, vecBundleBlock)
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := proof.Build(vecNetwork, blocks[vecBundleBlock], vecBundleIndex, []chain.Validation{vecValidation(blocks[vecBundleBlock], hub)}, anc)
	if err != nil {
		b.Fatal(err)
	}
	return bundle, net
}

// BenchmarkVerifyAnchored measures the offline check of the anchored
// vector bundle: the bundle's own checks plus its Bitcoin part.
func BenchmarkVerifyAnchored(b *testing.B) {
	bundle, net := anchoredVector(b)
	for range b.N {
		if _, err := proof.Verify(bundle, net); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOTS measures the export of the anchored vector bundle as an
// OpenTimestamps file.
func BenchmarkOTS(b *testing.B) {
	bundle, _ := anchoredVector(b)
	for range b.N {
		if _, err := proof.OTS(bundle); err != nil {
			b.Fatal(err)
		}
	}
}
