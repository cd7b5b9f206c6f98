// Package proof builds and verifies proof bundles: everything needed to
// check offline, with only the network's network.json, that one event was
// logged unaltered in a block the master signed and the hubs countersigned.
//
// A bundle is a JSON object (SPEC.md, "Proof bundle"):
//
//	{
//	  "version": 1,
//	  "network_id": "<32 hex digits>",
//	  "entry": "<base64, standard alphabet, padded: the entry bytes>",
//	  "leaf_index": 3,
//	  "entries_path": ["<64 hex>", ...],
//	  "header": "<hex of the 182 header bytes>",
//	  "block_hash": "<64 hex>",
//	  "master_signature": "<128 hex>",
//	  "validations": [{"hub_id": "hub-1", "height": 5, "block_hash": "<64 hex>",
//	                   "verdict": "accept", "reason": "", "signature": "<128 hex>"}],
//	  "anchor": null
//	}
//
// entries_path is the RFC 6962 audit path of the entry's leaf in the
// block's entries tree, the leaf's sibling first. block_hash is there for
// people reading the bundle; Verify recomputes it from the header and
// refuses a bundle whose block_hash differs. Hex is written in lower case.
//
// anchor is null, or in a version 2 bundle the Bitcoin part (Anchor):
// the block's audit path in the history tree of a later, anchored block,
// the raw transaction that carries that block's hash, its Merkle branch,
// the Bitcoin block header and height. OTS writes the same path as an
// OpenTimestamps file.
package proof

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"cissan/internal/chain"
	"cissan/internal/event"
)

// Version is the newest bundle format version this package writes and
// verifies. Version 1 bundles carry no Bitcoin anchor ("anchor": null);
// version 2 bundles may carry one. Build writes version 1 when it has no
// anchor to add, so that version 1 verifiers still read those.
const Version = 2

// Bundle is a proof bundle as it travels in JSON.
type Bundle struct {
	Version         int              `json:"version"`
	NetworkID       string           `json:"network_id"`
	Entry           string           `json:"entry"`
	LeafIndex       uint64           `json:"leaf_index"`
	EntriesPath     []string         `json:"entries_path"`
	Header          string           `json:"header"`
	BlockHash       string           `json:"block_hash"`
	MasterSignature string           `json:"master_signature"`
	Validations     []ValidationJSON `json:"validations"`
	Anchor          json.RawMessage  `json:"anchor"` // null or an Anchor
}

// ValidationJSON is a hub's validation as JSON, in bundles and in the HTTP
// API alike.
type ValidationJSON struct {
	HubID     string `json:"hub_id"`
	Height    uint64 `json:"height"`
	BlockHash string `json:"block_hash"`
	Verdict   string `json:"verdict"` // "accept" or "reject"
	Reason    string `json:"reason"`
	Signature string `json:"signature"`
}

// ValidationToJSON renders v.
func ValidationToJSON(v chain.Validation) ValidationJSON {
	return ValidationJSON{
		HubID:     v.HubID,
		Height:    v.Height,
		BlockHash: hex.EncodeToString(v.BlockHash[:]),
		Verdict:   v.Verdict.String(),
		Reason:    v.Reason,
		Signature: hex.EncodeToString(v.Signature),
	}
}

// ValidationFromJSON parses j. It checks the form of every field but not
// the signature: that needs the hub's key (chain.Validation.Verify).
func ValidationFromJSON(j ValidationJSON) (chain.Validation, error) {
	v := chain.Validation{HubID: j.HubID, Height: j.Height, Reason: j.Reason}
	if j.HubID == "" {
		return v, errors.New("hub_id: empty")
	}
	h, err := decodeHex(j.BlockHash, sha256.Size)
	if err != nil {
		return v, fmt.Errorf("block_hash: %w", err)
	}
	copy(v.BlockHash[:], h)
	switch j.Verdict {
	case "accept":
		v.Verdict = chain.Accept
	case "reject":
		v.Verdict = chain.Reject
	default:
		return v, fmt.Errorf("verdict %q: want \"accept\" or \"reject\"", j.Verdict)
	}
	if v.Signature, err = decodeHex(j.Signature, ed25519.SignatureSize); err != nil {
		return v, fmt.Errorf("signature: %w", err)
	}
	return v, nil
}

// decodeHex decodes s, which must hold exactly n bytes in hex (lowerHex).
func decodeHex(s string, n int) ([]byte, error) {
	b, err := lowerHex(s)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), n)
	}
	return b, nil
}

// lowerHex decodes lower-case hex, the one text bundles write for bytes:
// a value with two texts could be read as two values.
func lowerHex(s string) ([]byte, error) {
	if i := strings.IndexAny(s, "ABCDEF"); i >= 0 {
		return nil, fmt.Errorf("not lower-case hex (offset %d)", i)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex: %w", err)
	}
	return b, nil
}

// Build makes the bundle for the entry at index in blk. validations must all
// be for blk; they are copied in the given order. Build checks that the
// proof it makes verifies against blk's header, so that a store that lost
// or altered an entry cannot hand out a bundle that will never verify.
//
// anchor, when not nil, is the Bitcoin part for blk (see the anchor
// package); the bundle is then of version 2 and Build checks that part too.
func Build(network chain.NetworkID, blk *chain.Block, index int, validations []chain.Validation, anchor *Anchor) (*Bundle, error) {
	if index < 0 || index >= len(blk.Entries) {
		return nil, fmt.Errorf("build proof: entry index %d not in block %d of %d entries", index, blk.Header.Height, len(blk.Entries))
	}
	path, err := chain.InclusionProof(chain.EntryLeaves(blk.Entries), uint64(index))
	if err != nil {
		return nil, fmt.Errorf("build proof: %w", err)
	}
	return BuildPath(network, &blk.Header, blk.Signature, blk.Entries[index], uint64(index), path, validations, anchor)
}

// BuildPath is Build from the parts a proof needs: the block's header and
// signature, the entry, its index and its audit path (store.EntryPath
// reads them without the rest of the block). It checks the path against
// the header.
func BuildPath(network chain.NetworkID, hdr *chain.Header, sig, entry []byte, index uint64, path []chain.Hash,
	validations []chain.Validation, anchor *Anchor) (*Bundle, error) {
	if hdr.Network != network {
		return nil, fmt.Errorf("build proof: block is for network %s, not %s", hdr.Network, network)
	}
	if err := chain.VerifyInclusion(index, hdr.EntryCount, event.LeafHash(entry), path, hdr.EntriesRoot); err != nil {
		return nil, fmt.Errorf("build proof: entry %d of block %d does not match its header: %w", index, hdr.Height, err)
	}
	hash := hdr.Hash()
	b := &Bundle{
		Version:         1,
		NetworkID:       network.String(),
		Entry:           base64.StdEncoding.EncodeToString(entry),
		LeafIndex:       index,
		EntriesPath:     make([]string, len(path)),
		Header:          hex.EncodeToString(hdr.Encode()),
		BlockHash:       hex.EncodeToString(hash[:]),
		MasterSignature: hex.EncodeToString(sig),
		Validations:     make([]ValidationJSON, 0, len(validations)),
	}
	for i, p := range path {
		b.EntriesPath[i] = hex.EncodeToString(p[:])
	}
	for i, v := range validations {
		if v.Height != hdr.Height || v.BlockHash != hash {
			return nil, fmt.Errorf("build proof: validations[%d] by %s is for block %d %x, not block %d %x",
				i, v.HubID, v.Height, v.BlockHash, hdr.Height, hash)
		}
		b.Validations = append(b.Validations, ValidationToJSON(v))
	}
	if anchor != nil {
		raw, err := json.Marshal(anchor)
		if err != nil {
			return nil, fmt.Errorf("build proof: %w", err)
		}
		b.Version, b.Anchor = 2, raw
		if err := verifyAnchor(raw, hdr, hash, &Result{}); err != nil {
			return nil, fmt.Errorf("build proof: Bitcoin anchor of block %d: %w", hdr.Height, err)
		}
	}
	return b, nil
}

// Parse decodes a bundle from JSON strictly (strictJSON): two verifiers
// must never read one file two ways.
func Parse(data []byte) (*Bundle, error) {
	var b Bundle
	if err := strictJSON(data, &b); err != nil {
		return nil, fmt.Errorf("proof bundle: %w", err)
	}
	return &b, nil
}

// strictJSON decodes exactly one JSON value into v and refuses what a
// lenient parser would read one way and another parser another: a member
// given twice (encoding/json keeps the last, others the first), a member
// whose name matches a field only without regard to case, a member v does
// not know (a claim this version cannot check), invalid UTF-8, and
// anything after the value. It is JSON as the experimental encoding/json
// v2 reads it by default, with unknown members refused.
func strictJSON(data []byte, v any) error {
	return jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true))
}

// ErrInvalid is wrapped by every Verify error for a bundle that does not
// prove what it claims: malformed, altered, or signed by the wrong keys.
var ErrInvalid = errors.New("invalid proof")

// ErrNotFinal is wrapped by the Verify error for a bundle that checks in
// every other respect but holds fewer accepting validations than the
// network's quorum.
var ErrNotFinal = errors.New("not final")

// CheckError is a failed verification step. Check names the step, in the
// words SPEC.md uses ("master signature", "inclusion", "validations[1]",
// "quorum", ...).
type CheckError struct {
	Check string
	Err   error
	kind  error // ErrInvalid or ErrNotFinal
}

func (e *CheckError) Error() string { return e.Check + ": " + e.Err.Error() }

// Unwrap exposes both the class of failure (ErrInvalid or ErrNotFinal) and
// its cause.
func (e *CheckError) Unwrap() []error { return []error{e.kind, e.Err} }

func invalid(check string, format string, args ...any) error {
	return &CheckError{Check: check, Err: fmt.Errorf(format, args...), kind: ErrInvalid}
}

// Result is what a verified bundle proves.
type Result struct {
	Entry       *event.Entry
	Network     chain.NetworkID
	Height      uint64
	BlockHash   chain.Hash
	MintTimeMs  int64
	LeafIndex   uint64
	EntryCount  uint64
	EntryDigest chain.Hash // SHA-256 of the entry bytes
	Accepted    []string   // hubs whose accepting validation verified
	Rejected    []string   // hubs whose rejecting validation verified
	Quorum      int
	Final       bool
	Anchor      *AnchorResult // nil for a bundle without a Bitcoin anchor
	Checked     []string      // one sentence per check passed, in order
}

// Event returns the logged event.
func (r *Result) Event() *event.Event { return &r.Entry.Event }

func (r *Result) checked(format string, args ...any) {
	r.Checked = append(r.Checked, fmt.Sprintf(format, args...))
}

// Verify checks every claim of b against net, in the order SPEC.md gives
// ("Verifying a bundle"), and stops at the first that fails with a
// *CheckError naming it. If every check passes but fewer than net.Quorum
// hubs accepted the block, Verify returns the Result (Final false) together
// with an error wrapping ErrNotFinal; every other error comes with a nil
// Result.
func Verify(b *Bundle, net *chain.Network) (*Result, error) {
	if net == nil {
		return nil, invalid("network", "no network given")
	}
	if len(net.MasterKey) != ed25519.PublicKeySize {
		return nil, invalid("network", "master key is %d bytes, want %d", len(net.MasterKey), ed25519.PublicKeySize)
	}
	if net.Quorum < 1 {
		return nil, invalid("network", "quorum %d, want at least 1", net.Quorum)
	}
	r := &Result{Network: net.ID, Quorum: net.Quorum}

	if b.Version != 1 && b.Version != 2 {
		return nil, invalid("version", "bundle version %d, this verifier knows 1 and 2", b.Version)
	}
	anchored := len(bytes.TrimSpace(b.Anchor)) != 0 && string(bytes.TrimSpace(b.Anchor)) != "null"
	switch {
	case anchored && b.Version == 1:
		return nil, invalid("anchor", "a version 1 bundle cannot carry a Bitcoin anchor")
	case anchored:
		r.checked("bundle format version %d, with a Bitcoin anchor", b.Version)
	default:
		r.checked("bundle format version %d, without a Bitcoin anchor", b.Version)
	}

	id, err := chain.ParseNetworkID(b.NetworkID)
	if err != nil {
		return nil, invalid("network id", "%v", err)
	}
	if id != net.ID {
		return nil, invalid("network id", "bundle is for network %s, network.json is for %s", id, net.ID)
	}
	r.checked("network id %s matches network.json", id)

	hb, err := lowerHex(b.Header)
	if err != nil {
		return nil, invalid("header", "%v", err)
	}
	h, err := chain.DecodeHeader(hb)
	if err != nil {
		return nil, invalid("header", "%v", err)
	}
	if h.Network != net.ID {
		return nil, invalid("header", "header is for network %s, network.json is for %s", h.Network, net.ID)
	}
	r.Height, r.MintTimeMs, r.EntryCount = h.Height, h.MintTimeMs, h.EntryCount
	r.checked("header is %d well-formed bytes: network %s, height %d, %d entries", chain.HeaderSize, h.Network, h.Height, h.EntryCount)

	r.BlockHash = sha256.Sum256(hb)
	claimed, err := decodeHex(b.BlockHash, sha256.Size)
	if err != nil {
		return nil, invalid("block hash", "%v", err)
	}
	if !bytes.Equal(claimed, r.BlockHash[:]) {
		return nil, invalid("block hash", "bundle says %x, SHA-256 of the header is %x", claimed, r.BlockHash)
	}
	r.checked("block hash %x is SHA-256 of the header", r.BlockHash)

	sig, err := decodeHex(b.MasterSignature, ed25519.SignatureSize)
	if err != nil {
		return nil, invalid("master signature", "%v", err)
	}
	if !ed25519.Verify(net.MasterKey, chain.BlockMessage(r.BlockHash), sig) {
		return nil, invalid("master signature", "does not verify under the master key %x", []byte(net.MasterKey))
	}
	r.checked("master signature over the block hash verifies under master key %x", []byte(net.MasterKey))

	// Go's decoder skips line breaks, which RFC 4648 (section 3.3) says
	// to refuse; so does every byte outside the alphabet.
	if i := strings.IndexAny(b.Entry, "\r\n"); i >= 0 {
		return nil, invalid("entry", "not padded standard base64: a line break at offset %d", i)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b.Entry)
	if err != nil {
		return nil, invalid("entry", "not padded standard base64: %v", err)
	}
	if r.Entry, err = event.DecodeEntry(raw, event.DefaultLimits()); err != nil {
		return nil, invalid("entry", "%v", err)
	}
	r.EntryDigest = event.Digest(raw)
	r.checked("entry (%d bytes, digest %x) decodes and its event is valid", len(raw), r.EntryDigest)
	if hub := net.Hub(r.Entry.HubID); hub == nil || hub.FromHeight > r.Height {
		return nil, invalid("entry", "hub_id %q is not a hub of network.json at height %d", r.Entry.HubID, r.Height)
	}
	r.checked("entry was received by %s, a hub of the network at this height", r.Entry.HubID)

	path := make([]chain.Hash, len(b.EntriesPath))
	for i, s := range b.EntriesPath {
		p, err := decodeHex(s, sha256.Size)
		if err != nil {
			return nil, invalid("inclusion", "entries_path[%d]: %v", i, err)
		}
		copy(path[i][:], p)
	}
	r.LeafIndex = b.LeafIndex
	if err := chain.VerifyInclusion(b.LeafIndex, h.EntryCount, event.LeafHash(raw), path, h.EntriesRoot); err != nil {
		return nil, invalid("inclusion", "entry at leaf_index %d of %d: %v", b.LeafIndex, h.EntryCount, err)
	}
	r.checked("entry is leaf %d of %d under entries_root %x (audit path of %d hashes)", b.LeafIndex, h.EntryCount, h.EntriesRoot, len(path))

	seen := make(map[string]bool, len(b.Validations))
	for i, j := range b.Validations {
		check := fmt.Sprintf("validations[%d]", i)
		v, err := ValidationFromJSON(j)
		if err != nil {
			return nil, invalid(check, "%v", err)
		}
		hub := net.Hub(v.HubID)
		if hub == nil {
			return nil, invalid(check, "hub %q is not in network.json", v.HubID)
		}
		if len(hub.PublicKey) != ed25519.PublicKeySize {
			return nil, invalid(check, "hub %q key in network.json is %d bytes, want %d", v.HubID, len(hub.PublicKey), ed25519.PublicKeySize)
		}
		if hub.FromHeight > h.Height {
			return nil, invalid(check, "hub %q validates only from height %d, block is at %d", v.HubID, hub.FromHeight, h.Height)
		}
		if v.Height != h.Height || v.BlockHash != r.BlockHash {
			return nil, invalid(check, "hub %q validated block %d %x, not this block %d %x", v.HubID, v.Height, v.BlockHash, h.Height, r.BlockHash)
		}
		if seen[v.HubID] {
			return nil, invalid(check, "hub %q has more than one validation", v.HubID)
		}
		seen[v.HubID] = true
		if err := v.Verify(net.ID, hub.PublicKey); err != nil {
			return nil, invalid(check, "hub %q: signature does not verify under its key %x", v.HubID, []byte(hub.PublicKey))
		}
		if v.Verdict == chain.Accept {
			r.Accepted = append(r.Accepted, v.HubID)
		} else {
			r.Rejected = append(r.Rejected, v.HubID)
		}
		r.checked("validation by %s (%s) verifies under its key", v.HubID, v.Verdict)
	}

	if anchored {
		if err := verifyAnchor(b.Anchor, h, r.BlockHash, r); err != nil {
			return nil, err
		}
	}

	if len(r.Accepted) < net.Quorum {
		return r, &CheckError{
			Check: "quorum",
			Err:   fmt.Errorf("not final: %d of %d accepting validations, quorum %d", len(r.Accepted), len(b.Validations), net.Quorum),
			kind:  ErrNotFinal,
		}
	}
	r.Final = true
	r.checked("%d accepting validations reach the quorum of %d: the block is final", len(r.Accepted), net.Quorum)
	return r, nil
}

// resultJSON is Result as JSON, for `cissan verify proof --json` and the
// HTTP API.
type resultJSON struct {
	Valid       bool            `json:"valid"`
	Final       bool            `json:"final"`
	NetworkID   string          `json:"network_id"`
	Height      uint64          `json:"height"`
	BlockHash   string          `json:"block_hash"`
	MintTimeMs  int64           `json:"mint_time_ms"`
	LeafIndex   uint64          `json:"leaf_index"`
	EntryCount  uint64          `json:"entry_count"`
	EntryDigest string          `json:"entry_digest"`
	HubID       string          `json:"hub_id"`
	ReceivedMs  int64           `json:"received_ms"`
	Event       json.RawMessage `json:"event"`
	Tags        []tagJSON       `json:"tags"`
	Accepted    []string        `json:"accepted"`
	Rejected    []string        `json:"rejected"`
	Quorum      int             `json:"quorum"`
	Bitcoin     *bitcoinJSON    `json:"bitcoin,omitempty"`
	Checked     []string        `json:"checked"`
}

type bitcoinJSON struct {
	AnchoredHeight uint64    `json:"anchored_height"`
	TxID           string    `json:"txid"`
	BlockHash      string    `json:"block_hash"`
	Height         int64     `json:"height"`
	Time           time.Time `json:"time"`
	HeaderChecked  bool      `json:"header_checked"` // against a trusted header or a node, not only its proof of work
}

type tagJSON struct {
	Analyzer string `json:"analyzer"`
	Key      string `json:"key"`
	Label    string `json:"label"`
	Score    int64  `json:"score"` // fixed point, event.ScoreScale per 1.0
}

// MarshalJSON renders r. "valid" is true: a Result exists only for a bundle
// whose checks passed, though it may not be final.
func (r *Result) MarshalJSON() ([]byte, error) {
	ev, err := r.Entry.Event.MarshalJSON()
	if err != nil {
		return nil, err
	}
	j := resultJSON{
		Valid: true, Final: r.Final,
		NetworkID: r.Network.String(), Height: r.Height, BlockHash: hex.EncodeToString(r.BlockHash[:]),
		MintTimeMs: r.MintTimeMs, LeafIndex: r.LeafIndex, EntryCount: r.EntryCount,
		EntryDigest: hex.EncodeToString(r.EntryDigest[:]),
		HubID:       r.Entry.HubID, ReceivedMs: r.Entry.ReceivedMs, Event: ev,
		Tags:     make([]tagJSON, 0, len(r.Entry.Tags)),
		Accepted: nonNil(r.Accepted), Rejected: nonNil(r.Rejected), Quorum: r.Quorum,
		Checked: nonNil(r.Checked),
	}
	for _, t := range r.Entry.Tags {
		j.Tags = append(j.Tags, tagJSON{Analyzer: t.Analyzer, Key: t.Key, Label: t.Label, Score: t.Score})
	}
	if a := r.Anchor; a != nil {
		j.Bitcoin = &bitcoinJSON{
			AnchoredHeight: a.AnchoredHeight, TxID: a.TxID.String(), BlockHash: a.BitcoinBlockHash.String(),
			Height: a.BitcoinHeight, Time: a.BitcoinTime, HeaderChecked: a.HeaderChecked,
		}
	}
	return json.Marshal(j)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Summary writes r for people, one fact per line.
func (r *Result) Summary() string {
	var s strings.Builder
	ev, _ := r.Entry.Event.MarshalJSON() // never fails
	status := "FINAL"
	if !r.Final {
		status = "NOT FINAL"
	}
	fmt.Fprintf(&s, "proof:      valid, %s\n", status)
	fmt.Fprintf(&s, "network:    %s\n", r.Network)
	fmt.Fprintf(&s, "block:      height %d, hash %x\n", r.Height, r.BlockHash)
	fmt.Fprintf(&s, "minted:     %d (Unix ms)\n", r.MintTimeMs)
	fmt.Fprintf(&s, "entry:      index %d of %d, digest %x\n", r.LeafIndex, r.EntryCount, r.EntryDigest)
	fmt.Fprintf(&s, "received:   by %s at %d (Unix ms)\n", r.Entry.HubID, r.Entry.ReceivedMs)
	fmt.Fprintf(&s, "event:      %s\n", ev)
	for _, t := range r.Entry.Tags {
		fmt.Fprintf(&s, "tag:        %s %s key=%q score=%s\n", t.Analyzer, t.Label, t.Key, formatScore(t.Score))
	}
	fmt.Fprintf(&s, "accepted:   %s (quorum %d)\n", list(r.Accepted), r.Quorum)
	if len(r.Rejected) > 0 {
		fmt.Fprintf(&s, "rejected:   %s\n", list(r.Rejected))
	}
	if a := r.Anchor; a != nil {
		fmt.Fprintf(&s, "bitcoin:    existed by block %d (%s), mined %s\n", a.BitcoinHeight, a.BitcoinBlockHash, a.BitcoinTime.Format(time.RFC3339))
		fmt.Fprintf(&s, "            transaction %s anchors block %d\n", a.TxID, a.AnchoredHeight)
		if a.HeaderChecked {
			s.WriteString("            the Bitcoin block was checked against the Bitcoin chain\n")
		} else {
			s.WriteString("            NOT checked against the Bitcoin chain, only its proof of work: pass --bitcoin-header or --bitcoin-rpc\n")
		}
	} else {
		s.WriteString("bitcoin:    no anchor in this proof\n")
	}
	s.WriteString("checks:\n")
	for _, c := range r.Checked {
		fmt.Fprintf(&s, "  - %s\n", c)
	}
	return s.String()
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// formatScore prints a fixed-point score exactly, without floats.
func formatScore(v int64) string {
	sign := ""
	u := uint64(v)
	if v < 0 {
		sign, u = "-", uint64(-v)
	}
	frac := fmt.Sprintf("%06d", u%event.ScoreScale)
	frac = strings.TrimRight(frac, "0")
	if frac == "" {
		return fmt.Sprintf("%s%d", sign, u/event.ScoreScale)
	}
	return fmt.Sprintf("%s%d.%s", sign, u/event.ScoreScale, frac)
}
