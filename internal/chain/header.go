// Package chain defines blocks: the fixed binary header, its hash, the
// master's signature over it, the Merkle roots over entries and over
// earlier blocks, hubs' validations, and the checks every node runs on a
// block before it stores or countersigns it.
//
// Header layout (SPEC.md, "Block header"), 182 bytes, integers big-endian:
//
//	off  len  field
//	  0    4  magic "CSNB"
//	  4    2  version (1)
//	  6   16  network_id
//	 22    8  height
//	 30   32  prev_hash      (all zero at height 0)
//	 62    8  mint_time_ms
//	 70    8  entry_count
//	 78   32  entries_root   RFC 6962 root over the block's entry leaves
//	110   32  history_root   RFC 6962 root over block leaves 0..height-1
//	142   32  control_root   root over control records; all zero if none
//	174    8  reserved       all zero
//
// Each root is 32 contiguous bytes, so a proof climbs from a root to the
// block hash by one prepend, one append and one SHA-256.
package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Header layout constants.
const (
	HeaderSize    = 182
	HeaderVersion = 1

	offVersion     = 4
	offNetwork     = 6
	offHeight      = 22
	offPrev        = 30
	offMintTime    = 62
	offEntryCount  = 70
	offEntriesRoot = 78
	offHistoryRoot = 110
	offControlRoot = 142
	offReserved    = 174
)

var headerMagic = [4]byte{'C', 'S', 'N', 'B'}

// NetworkID names a network; every header and signature binds to it, so
// nothing signed for one network can be replayed on another.
type NetworkID [16]byte

func (n NetworkID) String() string { return hex.EncodeToString(n[:]) }

// ParseNetworkID parses 32 hex digits.
func ParseNetworkID(s string) (NetworkID, error) {
	var n NetworkID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(n) {
		return n, fmt.Errorf("network id %q: want 32 hex digits", s)
	}
	copy(n[:], b)
	return n, nil
}

// Header is a decoded block header.
type Header struct {
	Network     NetworkID
	Height      uint64
	Prev        Hash
	MintTimeMs  int64
	EntryCount  uint64
	EntriesRoot Hash
	HistoryRoot Hash
	ControlRoot Hash
}

// Encode returns the header's 182 bytes.
func (h *Header) Encode() []byte {
	b := make([]byte, HeaderSize)
	copy(b, headerMagic[:])
	binary.BigEndian.PutUint16(b[offVersion:], HeaderVersion)
	copy(b[offNetwork:], h.Network[:])
	binary.BigEndian.PutUint64(b[offHeight:], h.Height)
	copy(b[offPrev:], h.Prev[:])
	binary.BigEndian.PutUint64(b[offMintTime:], uint64(h.MintTimeMs))
	binary.BigEndian.PutUint64(b[offEntryCount:], h.EntryCount)
	copy(b[offEntriesRoot:], h.EntriesRoot[:])
	copy(b[offHistoryRoot:], h.HistoryRoot[:])
	copy(b[offControlRoot:], h.ControlRoot[:])
	return b
}

// Hash returns the block hash: SHA-256 of the header bytes.
func (h *Header) Hash() Hash { return sha256.Sum256(h.Encode()) }

// ErrHeader is returned for bytes that are not a well-formed header.
var ErrHeader = errors.New("malformed block header")

// DecodeHeader parses header bytes, refusing any other length, magic,
// version or non-zero reserved bytes.
func DecodeHeader(b []byte) (*Header, error) {
	if len(b) != HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrHeader, len(b), HeaderSize)
	}
	if !bytes.Equal(b[:4], headerMagic[:]) {
		return nil, fmt.Errorf("%w: bad magic %q", ErrHeader, b[:4])
	}
	if v := binary.BigEndian.Uint16(b[offVersion:]); v != HeaderVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrHeader, v, HeaderVersion)
	}
	if !bytes.Equal(b[offReserved:], make([]byte, HeaderSize-offReserved)) {
		return nil, fmt.Errorf("%w: reserved bytes not zero", ErrHeader)
	}
	h := &Header{
		Height:     binary.BigEndian.Uint64(b[offHeight:]),
		MintTimeMs: int64(binary.BigEndian.Uint64(b[offMintTime:])),
		EntryCount: binary.BigEndian.Uint64(b[offEntryCount:]),
	}
	copy(h.Network[:], b[offNetwork:])
	copy(h.Prev[:], b[offPrev:])
	copy(h.EntriesRoot[:], b[offEntriesRoot:])
	copy(h.HistoryRoot[:], b[offHistoryRoot:])
	copy(h.ControlRoot[:], b[offControlRoot:])
	return h, nil
}

// RootOffset reports where entries_root and history_root sit in the header,
// for proofs that climb from a root to the block hash.
func RootOffset(history bool) int {
	if history {
		return offHistoryRoot
	}
	return offEntriesRoot
}
