package bus

// Wire format of bus messages, used wherever a message leaves the process
// (the RabbitMQ transport). Every message is
//
//	message    = version:u8 (=1)  kind:u8  body
//
// with all integers big-endian, and these building blocks:
//
//	bytes      = length:u32  length bytes
//	string     = bytes                          (no character encoding is imposed)
//	list       = count:u32  bytes*count
//
// The bodies, by kind:
//
//	1 batch      = hub_id:string  seq:u64  entries:list  signature:bytes
//	2 refusals   = count:u32  (uid:string  reason:string)*count
//	3 block      = header:bytes  signature:bytes  entries:list  controls:list
//	4 validation = hub_id:string  height:u64  block_hash:[32]  verdict:u8  reason:string  signature:bytes
//	5 fetch      = from:u64  max:u32
//	6 blocks     = count:u32  block*count        (each a block body as in kind 3, without version and kind)
//	7 error      = class:u8  message:string     (class 1: the request failed a check and never will pass; 0: any other failure)
//	8 device     = device_uid:string             (the registry changed this device's status or token)
//
// A block's header is the 182 header bytes of SPEC.md (chain.Header.Encode),
// so a node that receives a block hashes exactly the bytes the master signed.
//
// Decoders refuse, with an error wrapping ErrMalformed that names the field:
// another version or kind, a length or count running past the end, a header
// that chain.DecodeHeader refuses, and any trailing byte. A count is checked
// against the bytes left before anything is allocated, so a short hostile
// message cannot make a decoder allocate much. The encoding is canonical: a
// message decodes only if re-encoding the result gives back the same bytes.
//
// Decoded byte fields (entries, controls, signatures) share memory with the
// input: the caller must not modify the input afterwards.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"cissan/internal/chain"
)

// WireVersion is the first byte of every bus message.
const WireVersion = 1

// Message kinds, the second byte of every bus message.
const (
	KindBatch      byte = 1
	KindRefusals   byte = 2
	KindBlock      byte = 3
	KindValidation byte = 4
	KindFetch      byte = 5
	KindBlocks     byte = 6
	KindError      byte = 7
	KindDevice     byte = 8
)

var kindNames = map[byte]string{
	KindBatch: "batch", KindRefusals: "refusals", KindBlock: "block", KindValidation: "validation",
	KindFetch: "fetch", KindBlocks: "blocks", KindError: "error", KindDevice: "device",
}

// KindName returns the name of a message kind, as carried in the AMQP
// "type" property.
func KindName(kind byte) string {
	if n, ok := kindNames[kind]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", kind)
}

// ErrMalformed marks bytes that are not a well-formed bus message. Errors
// wrapping it say which message and field.
var ErrMalformed = errors.New("malformed bus message")

// RemoteError is a failure the master reported in a reply instead of an
// answer. It matches chain.ErrInvalid (errors.Is) when the master's
// handler found the request invalid, so callers can tell a request that
// will never succeed from one worth retrying.
type RemoteError struct {
	Invalid bool
	Msg     string
}

func (e *RemoteError) Error() string { return "master: " + e.Msg }

// Is reports whether target is chain.ErrInvalid and the failure was one.
func (e *RemoteError) Is(target error) bool { return e.Invalid && target == chain.ErrInvalid }

// EncodeBatch encodes a hub's batch.
func EncodeBatch(b *Batch) []byte {
	w := newWriter(KindBatch, 4+len(b.HubID)+8+listSize(b.Entries)+4+len(b.Signature))
	w.bytes([]byte(b.HubID))
	w.u64(b.Seq)
	w.list(b.Entries)
	w.bytes(b.Signature)
	return w.b
}

// DecodeBatch decodes a batch message.
func DecodeBatch(p []byte) (*Batch, error) {
	r := newReader(p, KindBatch)
	b := &Batch{}
	b.HubID = string(r.bytes("hub_id"))
	b.Seq = r.u64("seq")
	b.Entries = r.list("entries")
	b.Signature = r.bytes("signature")
	if err := r.end(); err != nil {
		return nil, err
	}
	return b, nil
}

// EncodeRefusals encodes the master's answer to a batch.
func EncodeRefusals(refused []Refusal) []byte {
	n := 4
	for _, f := range refused {
		n += 8 + len(f.UID) + len(f.Reason)
	}
	w := newWriter(KindRefusals, n)
	w.u32(uint32(len(refused)))
	for _, f := range refused {
		w.bytes([]byte(f.UID))
		w.bytes([]byte(f.Reason))
	}
	return w.b
}

// DecodeRefusals decodes the master's answer to a batch.
func DecodeRefusals(p []byte) ([]Refusal, error) {
	r := newReader(p, KindRefusals)
	n := r.count("refusals", 8)
	var out []Refusal
	if n > 0 {
		out = make([]Refusal, n)
	}
	for i := range out {
		out[i].UID = string(r.bytes("uid"))
		out[i].Reason = string(r.bytes("reason"))
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// EncodeBlock encodes a block.
func EncodeBlock(b *chain.Block) []byte {
	w := newWriter(KindBlock, blockSize(b))
	w.block(b)
	return w.b
}

// DecodeBlock decodes a block message. It checks that the header is well
// formed, not that the block is valid: that is chain.Block.Check's job.
func DecodeBlock(p []byte) (*chain.Block, error) {
	r := newReader(p, KindBlock)
	b := r.block()
	if err := r.end(); err != nil {
		return nil, err
	}
	return b, nil
}

// EncodeValidation encodes a hub's validation.
func EncodeValidation(v *chain.Validation) []byte {
	w := newWriter(KindValidation, 4+len(v.HubID)+8+len(v.BlockHash)+1+4+len(v.Reason)+4+len(v.Signature))
	w.bytes([]byte(v.HubID))
	w.u64(v.Height)
	w.b = append(w.b, v.BlockHash[:]...)
	w.b = append(w.b, byte(v.Verdict))
	w.bytes([]byte(v.Reason))
	w.bytes(v.Signature)
	return w.b
}

// DecodeValidation decodes a validation message. The signature is not
// checked here: that is chain.Validation.Verify's job.
func DecodeValidation(p []byte) (*chain.Validation, error) {
	r := newReader(p, KindValidation)
	v := &chain.Validation{}
	v.HubID = string(r.bytes("hub_id"))
	v.Height = r.u64("height")
	copy(v.BlockHash[:], r.fixed("block_hash", len(v.BlockHash)))
	v.Verdict = chain.Verdict(r.u8("verdict"))
	v.Reason = string(r.bytes("reason"))
	v.Signature = r.bytes("signature")
	if err := r.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// EncodeFetch encodes a request for up to n blocks from height from on.
// n is clamped to 0..2^32-1.
func EncodeFetch(from uint64, n int) []byte {
	w := newWriter(KindFetch, 12)
	w.u64(from)
	w.u32(uint32(min(uint64(math.MaxUint32), uint64(max(n, 0)))))
	return w.b
}

// DecodeFetch decodes a fetch request.
func DecodeFetch(p []byte) (from uint64, n int, err error) {
	r := newReader(p, KindFetch)
	from = r.u64("from")
	n = int(r.u32("max"))
	if err := r.end(); err != nil {
		return 0, 0, err
	}
	return from, n, nil
}

// EncodeBlocks encodes the answer to a fetch.
func EncodeBlocks(blocks []*chain.Block) []byte {
	n := 4
	for _, b := range blocks {
		n += blockSize(b)
	}
	w := newWriter(KindBlocks, n)
	w.u32(uint32(len(blocks)))
	for _, b := range blocks {
		w.block(b)
	}
	return w.b
}

// DecodeBlocks decodes the answer to a fetch.
func DecodeBlocks(p []byte) ([]*chain.Block, error) {
	r := newReader(p, KindBlocks)
	n := r.count("blocks", minBlockSize)
	var out []*chain.Block
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.block())
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// EncodeError encodes a failure reply. Its class records whether err is
// chain.ErrInvalid or ErrMalformed, a request that can never succeed,
// which the caller's RemoteError then matches as chain.ErrInvalid.
func EncodeError(err error) []byte {
	msg := err.Error()
	w := newWriter(KindError, 1+4+len(msg))
	var class byte
	if errors.Is(err, chain.ErrInvalid) || errors.Is(err, ErrMalformed) {
		class = 1
	}
	w.b = append(w.b, class)
	w.bytes([]byte(msg))
	return w.b
}

// DecodeError decodes a failure reply.
func DecodeError(p []byte) (*RemoteError, error) {
	r := newReader(p, KindError)
	class := r.u8("class")
	msg := string(r.bytes("message"))
	if r.err == nil && class > 1 {
		r.fail("class", fmt.Sprintf("unknown class %d", class))
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return &RemoteError{Invalid: class == 1, Msg: msg}, nil
}

// EncodeDeviceChange encodes the registry's notice that a device changed.
func EncodeDeviceChange(uid string) []byte {
	w := newWriter(KindDevice, 4+len(uid))
	w.bytes([]byte(uid))
	return w.b
}

// DecodeDeviceChange decodes a device change notice.
func DecodeDeviceChange(p []byte) (string, error) {
	r := newReader(p, KindDevice)
	uid := string(r.bytes("device_uid"))
	if err := r.end(); err != nil {
		return "", err
	}
	return uid, nil
}

// PeekKind returns a message's kind after checking its version, so a reply
// that may be an answer or an error can be told apart before decoding.
func PeekKind(p []byte) (byte, error) {
	if detail := checkVersion(p); detail != "" {
		return 0, fmt.Errorf("%w: %s", ErrMalformed, detail)
	}
	return p[1], nil
}

func checkVersion(p []byte) string {
	if len(p) < 2 {
		return fmt.Sprintf("%d bytes, too short for version and kind", len(p))
	}
	if p[0] != WireVersion {
		return fmt.Sprintf("version %d, want %d", p[0], WireVersion)
	}
	return ""
}

// minBlockSize is the fewest bytes a block body can take: four lengths and
// the header.
const minBlockSize = 4*4 + chain.HeaderSize

func blockSize(b *chain.Block) int {
	return 4 + chain.HeaderSize + 4 + len(b.Signature) + listSize(b.Entries) + listSize(b.Controls)
}

func listSize(l [][]byte) int {
	n := 4
	for _, e := range l {
		n += 4 + len(e)
	}
	return n
}

// writer appends to a buffer sized up front, so a block of many
// megabytes is encoded with one allocation.
type writer struct{ b []byte }

func newWriter(kind byte, body int) *writer {
	b := make([]byte, 2, 2+body)
	b[0], b[1] = WireVersion, kind
	return &writer{b: b}
}

func (w *writer) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }

func (w *writer) bytes(p []byte) {
	w.u32(uint32(len(p)))
	w.b = append(w.b, p...)
}

func (w *writer) list(l [][]byte) {
	w.u32(uint32(len(l)))
	for _, e := range l {
		w.bytes(e)
	}
}

func (w *writer) block(b *chain.Block) {
	w.bytes(b.Header.Encode())
	w.bytes(b.Signature)
	w.list(b.Entries)
	w.list(b.Controls)
}

// reader reads one message. The first failure sticks: later reads return
// zero values, and end reports it, so decoders read straight through
// without checking after every field.
type reader struct {
	p    []byte
	off  int
	what string // the message kind, for errors
	err  error
}

func newReader(p []byte, kind byte) *reader {
	r := &reader{p: p, what: KindName(kind)}
	switch detail := checkVersion(p); {
	case detail != "":
		r.err = fmt.Errorf("%w: %s: %s", ErrMalformed, r.what, detail)
	case p[1] != kind:
		r.err = fmt.Errorf("%w: %s, want %s", ErrMalformed, KindName(p[1]), r.what)
	default:
		r.off = 2
	}
	return r
}

func (r *reader) fail(field, detail string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s: %s", ErrMalformed, r.what, field, detail)
	}
}

func (r *reader) left() int { return len(r.p) - r.off }

// fixed returns the next n bytes, sharing the input's memory; the slice's
// capacity ends with it, so appending to it cannot overwrite what follows.
func (r *reader) fixed(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > r.left() {
		r.fail(field, fmt.Sprintf("needs %d bytes, %d left", n, r.left()))
		return nil
	}
	b := r.p[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8(field string) byte {
	if b := r.fixed(field, 1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.fixed(field, 4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if b := r.fixed(field, 8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// bytes reads a length-prefixed field; an empty one decodes as nil.
func (r *reader) bytes(field string) []byte { return r.element(field, -1) }

// element reads a length-prefixed field, or element i of a list field
// (i >= 0). The field's name is formatted only on failure, since a block
// may hold tens of thousands of entries.
func (r *reader) element(field string, i int) []byte {
	if r.err != nil {
		return nil
	}
	if r.left() < 4 {
		r.fail(elementName(field, i), fmt.Sprintf("length needs 4 bytes, %d left", r.left()))
		return nil
	}
	n := binary.BigEndian.Uint32(r.p[r.off:])
	r.off += 4
	if uint64(n) > uint64(r.left()) {
		r.fail(elementName(field, i), fmt.Sprintf("length %d exceeds the %d bytes left", n, r.left()))
		return nil
	}
	if n == 0 {
		return nil
	}
	return r.fixed(field, int(n))
}

func elementName(field string, i int) string {
	if i < 0 {
		return field
	}
	return fmt.Sprintf("%s[%d]", field, i)
}

// count reads an element count and checks that many elements of at least
// minSize bytes each can fit in what is left, before anyone allocates.
func (r *reader) count(field string, minSize int) int {
	n := r.u32(field + " count")
	if uint64(n)*uint64(minSize) > uint64(r.left()) {
		r.fail(field, fmt.Sprintf("count %d cannot fit in the %d bytes left", n, r.left()))
		return 0
	}
	return int(n)
}

func (r *reader) list(field string) [][]byte {
	n := r.count(field, 4)
	var out [][]byte
	if n > 0 {
		out = make([][]byte, n)
	}
	for i := range out {
		out[i] = r.element(field, i)
		if out[i] == nil && r.err == nil {
			out[i] = []byte{} // an empty entry stays an entry
		}
	}
	return out
}

func (r *reader) block() *chain.Block {
	raw := r.bytes("header")
	if r.err != nil {
		return nil
	}
	h, err := chain.DecodeHeader(raw)
	if err != nil {
		r.err = fmt.Errorf("%w: %s: header: %w", ErrMalformed, r.what, err)
		return nil
	}
	b := &chain.Block{Header: *h}
	b.Signature = r.bytes("signature")
	b.Entries = r.list("entries")
	b.Controls = r.list("controls")
	return b
}

// end reports the first failure, or trailing bytes after a whole message.
func (r *reader) end() error {
	if r.err == nil && r.left() != 0 {
		r.fail("end", fmt.Sprintf("%d trailing bytes", r.left()))
	}
	return r.err
}
