package chain

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"cissan/internal/event"
)

// Signature domains. Every signed message starts with one, so a signature
// made for one purpose can never be presented as another.
const (
	domainBlock      = "cissan/block/v1\x00"
	domainBatch      = "cissan/batch/v1\x00"
	domainValidation = "cissan/validation/v1\x00"
)

// Block is a header, the master's signature over its hash, the entry
// bytes in order, and the control records, if any.
type Block struct {
	Header    Header
	Signature []byte
	Entries   [][]byte
	Controls  [][]byte

	// chunkRoots are the roots of Entries' chunks as Seal or Checked
	// computed them; see ChunkRoots. Never written to a block once made:
	// nodes in one process share a block.
	chunkRoots []Hash
}

// ChunkRoots returns the roots of the block's chunks of ChunkSize entries,
// or nil for a block of ChunkSize entries or fewer. A block from Seal or
// Checked keeps the roots computed on the way to entries_root, so that
// the node storing it does not hash its entries once more.
func (b *Block) ChunkRoots() []Hash {
	if len(b.Entries) <= ChunkSize {
		return nil
	}
	if b.chunkRoots != nil {
		return b.chunkRoots
	}
	_, chunks := entriesRoot(b.Entries)
	return chunks
}

// entriesRoot returns the entries_root of entries and, for more than
// ChunkSize entries, their chunk roots, from which the root is computed
// (the tree over the chunk roots is the top of the tree over the leaves).
func entriesRoot(entries [][]byte) (Hash, []Hash) {
	leaves := EntryLeaves(entries)
	if len(leaves) <= ChunkSize {
		return Root(leaves), nil
	}
	chunks := ChunkRoots(leaves)
	return Root(chunks), chunks
}

// BlockMessage is what the master signs for a block.
func BlockMessage(blockHash Hash) []byte {
	return append([]byte(domainBlock), blockHash[:]...)
}

// EntryLeaves returns the leaf hashes of entries.
func EntryLeaves(entries [][]byte) []Hash {
	leaves := make([]Hash, len(entries))
	for i, e := range entries {
		leaves[i] = event.LeafHash(e)
	}
	return leaves
}

// Seal fills in the header's entry count, entries_root and control_root
// and signs the block with the master key.
func Seal(h Header, entries, controls [][]byte, key ed25519.PrivateKey) *Block {
	h.EntryCount = uint64(len(entries))
	var chunks []Hash
	h.EntriesRoot, chunks = entriesRoot(entries)
	h.ControlRoot = ControlRoot(controls)
	hash := h.Hash()
	return &Block{Header: h, Signature: ed25519.Sign(key, BlockMessage(hash)), Entries: entries, Controls: controls, chunkRoots: chunks}
}

// ErrInvalid marks a block or message that fails a check. Errors wrapping
// it say which check.
var ErrInvalid = errors.New("invalid")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Expect is what a node knows before it looks at the next block.
type Expect struct {
	Network     NetworkID
	Height      uint64
	Prev        Hash // hash of block Height-1; zero at height 0
	HistoryRoot Hash // root over blocks 0..Height-1
	MasterKey   ed25519.PublicKey
	Hubs        []HubInfo // every entry must name one of these, enrolled at or below Height
	Limits      event.Limits
}

// hubAt reports whether id names a hub enrolled at or below height h.
func hubAt(hubs []HubInfo, id string, h uint64) bool {
	for _, hub := range hubs {
		if hub.ID == id {
			return hub.FromHeight <= h
		}
	}
	return false
}

// Check runs every check a node makes on a block before storing it: the
// network, height and links, the master's signature, the entry count and
// entries_root, and that every entry decodes and is valid. It returns the
// decoded entries.
func (b *Block) Check(x Expect) ([]*event.Entry, error) {
	_, entries, err := b.Checked(x)
	return entries, err
}

// Checked runs Check and also returns a copy of b that keeps the chunk
// roots the check computed, so that storing the copy does not hash every
// entry again (a tenth of a hub's work on a block). b is not changed:
// nodes in one process share it.
func (b *Block) Checked(x Expect) (*Block, []*event.Entry, error) {
	h := &b.Header
	if h.Network != x.Network {
		return nil, nil, invalidf("block %d: network %s, want %s", h.Height, h.Network, x.Network)
	}
	if h.Height != x.Height {
		return nil, nil, invalidf("block height %d, want %d", h.Height, x.Height)
	}
	if h.Prev != x.Prev {
		return nil, nil, invalidf("block %d: prev_hash %x does not link to the previous block (%x)", h.Height, h.Prev, x.Prev)
	}
	if h.HistoryRoot != x.HistoryRoot {
		return nil, nil, invalidf("block %d: history_root %x, want %x", h.Height, h.HistoryRoot, x.HistoryRoot)
	}
	if len(x.MasterKey) != ed25519.PublicKeySize { // ed25519.Verify would panic
		return nil, nil, invalidf("block %d: master key is %d bytes, want %d", h.Height, len(x.MasterKey), ed25519.PublicKeySize)
	}
	if !ed25519.Verify(x.MasterKey, BlockMessage(h.Hash()), b.Signature) {
		return nil, nil, invalidf("block %d: master signature does not verify", h.Height)
	}
	if h.EntryCount != uint64(len(b.Entries)) {
		return nil, nil, invalidf("block %d: entry_count %d but %d entries", h.Height, h.EntryCount, len(b.Entries))
	}
	// Hashing the entries and decoding them are independent, and they
	// are most of the work of checking a block: they run side by side.
	var (
		root   Hash
		chunks []Hash
		hashed sync.WaitGroup
	)
	hashed.Go(func() { root, chunks = entriesRoot(b.Entries) })
	entries, decodeErr := decodeEntries(b.Entries, x, h.Height)
	hashed.Wait()
	if root != h.EntriesRoot {
		return nil, nil, invalidf("block %d: entries_root %x, entries hash to %x", h.Height, h.EntriesRoot, root)
	}
	if root := ControlRoot(b.Controls); root != h.ControlRoot {
		return nil, nil, invalidf("block %d: control_root %x, control records hash to %x", h.Height, h.ControlRoot, root)
	}
	for i, c := range b.Controls {
		if _, err := DecodeControl(c); err != nil {
			return nil, nil, invalidf("block %d control record %d: %v", h.Height, i, err)
		}
	}
	if decodeErr != nil {
		return nil, nil, decodeErr
	}
	if err := checkOnce(h.Height, entries); err != nil {
		return nil, nil, err
	}
	checked := *b
	checked.chunkRoots = chunks
	return &checked, entries, nil
}

// decodeEntries decodes and checks the entries of block height, in two
// halves at once when there are many, and returns the error of the
// lowest entry that fails.
func decodeEntries(raws [][]byte, x Expect, height uint64) ([]*event.Entry, error) {
	entries := make([]*event.Entry, len(raws))
	decode := func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			en, err := event.DecodeEntry(raws[i], x.Limits)
			if err != nil {
				return fmt.Errorf("%w: block %d entry %d: %w", ErrInvalid, height, i, err)
			}
			if !hubAt(x.Hubs, en.HubID, height) {
				return invalidf("block %d entry %d: hub_id %q is not a hub of the network at this height", height, i, en.HubID)
			}
			entries[i] = en
		}
		return nil
	}
	if len(raws) < parallelEntries {
		if err := decode(0, len(raws)); err != nil {
			return nil, err
		}
		return entries, nil
	}
	mid := len(raws) / 2
	var second error
	var wg sync.WaitGroup
	wg.Go(func() { second = decode(mid, len(raws)) })
	first := decode(0, mid)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return entries, second
}

// parallelEntries is the fewest entries decodeEntries splits in two.
const parallelEntries = 1024

// BatchMessage is what a hub signs for a batch of submissions: the network,
// the hub, the batch's sequence number and the RFC 6962 root over the
// submissions' leaf hashes. One signature covers the whole batch.
func BatchMessage(network NetworkID, hubID string, seq uint64, entries [][]byte) []byte {
	root := Root(EntryLeaves(entries))
	m := append([]byte(domainBatch), network[:]...)
	m = binary.BigEndian.AppendUint32(m, uint32(len(hubID)))
	m = append(m, hubID...)
	m = binary.BigEndian.AppendUint64(m, seq)
	return append(m, root[:]...)
}

// Verdict is a hub's judgement of a block.
type Verdict uint8

// Verdicts.
const (
	Accept Verdict = 1
	Reject Verdict = 2
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Validation is a hub's signed verdict on one block.
type Validation struct {
	HubID     string
	Height    uint64
	BlockHash Hash
	Verdict   Verdict
	Reason    string // empty for Accept
	Signature []byte
}

// Message returns the bytes a hub signs for v.
func (v *Validation) Message(network NetworkID) []byte {
	m := append([]byte(domainValidation), network[:]...)
	m = binary.BigEndian.AppendUint32(m, uint32(len(v.HubID)))
	m = append(m, v.HubID...)
	m = binary.BigEndian.AppendUint64(m, v.Height)
	m = append(m, v.BlockHash[:]...)
	m = append(m, byte(v.Verdict))
	m = binary.BigEndian.AppendUint32(m, uint32(len(v.Reason)))
	return append(m, v.Reason...)
}

// Sign sets v.Signature.
func (v *Validation) Sign(network NetworkID, key ed25519.PrivateKey) {
	v.Signature = ed25519.Sign(key, v.Message(network))
}

// Verify checks v's signature under the hub's key.
func (v *Validation) Verify(network NetworkID, hubKey ed25519.PublicKey) error {
	if v.Verdict != Accept && v.Verdict != Reject {
		return invalidf("validation by %s of block %d: unknown verdict %d", v.HubID, v.Height, v.Verdict)
	}
	if len(hubKey) != ed25519.PublicKeySize { // ed25519.Verify would panic
		return invalidf("validation by %s of block %d: hub key is %d bytes, want %d", v.HubID, v.Height, len(hubKey), ed25519.PublicKeySize)
	}
	if !ed25519.Verify(hubKey, v.Message(network), v.Signature) {
		return invalidf("validation by %s of block %d: signature does not verify", v.HubID, v.Height)
	}
	return nil
}

// checkOnce checks that no event appears twice in a block: no two entries
// of one uid and device with the same content. Two contents under one uid
// of a device are two versions of the event, both logged (see
// event.VersionKey). Content is hashed only for entries whose uid and
// device meet again, which almost none do, and once per entry.
func checkOnce(height uint64, entries []*event.Entry) error {
	type id struct{ uid, device string }
	type version struct {
		id      id
		content [32]byte
	}
	seen := make(map[id]int, len(entries)) // first entry, or -1 once in versions
	var versions map[version]int
	for i, en := range entries {
		k := id{en.Event.UID, en.Event.DeviceUID}
		j, again := seen[k]
		if !again {
			seen[k] = i
			continue
		}
		if versions == nil {
			versions = map[version]int{}
		}
		if j >= 0 {
			versions[version{k, event.ContentHash(&entries[j].Event)}] = j
			seen[k] = -1
		}
		v := version{k, event.ContentHash(&en.Event)}
		if j, dup := versions[v]; dup {
			return invalidf("block %d entry %d: event uid %q of %s appears twice (entry %d)", height, i, k.uid, k.device, j)
		}
		versions[v] = i
	}
	return nil
}
