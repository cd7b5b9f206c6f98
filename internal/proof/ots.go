package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"cissan/internal/bitcoin"
	"cissan/internal/chain"
	"cissan/internal/ots"
)

// OTS exports the way from b's entry to Bitcoin as an OpenTimestamps file
// (SPEC.md section 11, "OpenTimestamps export"). The file is for the
// entry bytes: a verifier hashes them with SHA-256, which gives the entry
// digest, then follows prepends, appends and SHA-256s up to the Merkle
// root of the Bitcoin block, where a Bitcoin block header attestation
// names its height. b must carry an anchor; OTS checks that its path ends
// at that block's Merkle root.
func OTS(b *Bundle) ([]byte, error) {
	if len(bytes.TrimSpace(b.Anchor)) == 0 || string(bytes.TrimSpace(b.Anchor)) == "null" {
		return nil, fmt.Errorf("ots: the proof has no Bitcoin anchor yet")
	}
	var a Anchor
	if err := json.Unmarshal(b.Anchor, &a); err != nil {
		return nil, fmt.Errorf("ots: anchor: %w", err)
	}
	entry, err := base64.StdEncoding.DecodeString(b.Entry)
	if err != nil {
		return nil, fmt.Errorf("ots: entry: %w", err)
	}
	hdr, err := lowerHex(b.Header)
	if err != nil || len(hdr) != chain.HeaderSize {
		return nil, fmt.Errorf("ots: header: not %d bytes of hex", chain.HeaderSize)
	}
	h, err := chain.DecodeHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("ots: %w", err)
	}
	entriesPath, err := hashes("ots", "entries_path", b.EntriesPath)
	if err != nil {
		return nil, err
	}
	historyPath, err := hashes("ots", "history_path", a.HistoryPath)
	if err != nil {
		return nil, err
	}
	anchored, err := lowerHex(a.AnchoredHeader)
	if err != nil || len(anchored) != chain.HeaderSize {
		return nil, fmt.Errorf("ots: anchored_header: not %d bytes of hex", chain.HeaderSize)
	}
	ah, err := chain.DecodeHeader(anchored)
	if err != nil {
		return nil, fmt.Errorf("ots: anchored header: %w", err)
	}
	tx, err := lowerHex(a.Tx)
	if err != nil {
		return nil, fmt.Errorf("ots: tx: %w", err)
	}
	btcHeader, err := lowerHex(a.BitcoinHeader)
	if err != nil {
		return nil, fmt.Errorf("ots: bitcoin_header: %w", err)
	}
	bh, err := bitcoin.ParseHeader(btcHeader)
	if err != nil {
		return nil, fmt.Errorf("ots: %w", err)
	}
	branch, err := hashes("ots", "tx_path", a.TxPath)
	if err != nil {
		return nil, err
	}

	// Entry digest to block hash (SPEC.md section 6, "Climbing").
	ops := []ots.Op{ots.Prepend([]byte{0x00}), ots.SHA256()}
	ops = append(ops, climb(b.LeafIndex, h.EntryCount, entriesPath)...)
	ops = append(ops, ots.Prepend(hdr[:78]), ots.Append(hdr[110:]), ots.SHA256())
	// Block hash to the anchored block's hash, through its history tree.
	if ah.Height > h.Height {
		ops = append(ops, ots.Prepend([]byte{0x00}), ots.SHA256())
		ops = append(ops, climb(h.Height, ah.Height, historyPath)...)
		ops = append(ops, ots.Prepend(anchored[:110]), ots.Append(anchored[142:]), ots.SHA256())
	}
	// Anchored hash to the transaction id, inside the OP_RETURN data.
	at := bytes.Index(tx, AnchorData(sha256.Sum256(anchored)))
	if at < 0 {
		return nil, fmt.Errorf("ots: the transaction does not carry the anchored block hash")
	}
	at += len(AnchorTag)
	ops = append(ops, ots.Prepend(tx[:at]), ots.Append(tx[at+sha256.Size:]), ots.SHA256(), ots.SHA256())
	// Transaction id to the Bitcoin block's Merkle root.
	index := a.TxIndex
	for _, s := range branch {
		if index&1 == 1 {
			ops = append(ops, ots.Prepend(s[:]))
		} else {
			ops = append(ops, ots.Append(s[:]))
		}
		ops = append(ops, ots.SHA256(), ots.SHA256())
		index >>= 1
	}

	digest := sha256.Sum256(entry)
	if got := ots.Run(digest[:], ops); !bytes.Equal(got, bh.MerkleRoot[:]) {
		return nil, fmt.Errorf("ots: the path ends at %x, not at the Merkle root %x of Bitcoin block %d", got, bh.MerkleRoot[:], a.BitcoinHeight)
	}
	return ots.File(digest, ops, uint64(a.BitcoinHeight))
}

// climb returns the operations that take leaf index of a tree of size
// leaves up to its root along path, following SPEC.md section 5.
func climb(index, size uint64, path []chain.Hash) []ots.Op {
	var ops []ots.Op
	fn, sn := index, size-1
	for _, p := range path {
		if fn&1 == 1 || fn == sn {
			ops = append(ops, ots.Prepend(append([]byte{0x01}, p[:]...)), ots.SHA256())
			for fn != 0 && fn&1 == 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			ops = append(ops, ots.Prepend([]byte{0x01}), ots.Append(p[:]), ots.SHA256())
		}
		fn, sn = fn>>1, sn>>1
	}
	return ops
}
