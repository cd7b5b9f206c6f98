package event

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// EntryVersion is the first byte of every entry encoding.
const EntryVersion = 1

// Tag is an analyzer's verdict on an event, logged inside the entry so that
// every hub can reproduce it before countersigning.
type Tag struct {
	Analyzer string // analyzer name, e.g. "range"
	Key      string // item key the tag is about; "" for the whole event
	Label    string // e.g. "out_of_range"
	Model    string // version of the model or rules that produced the tag; "" if none
	Score    int64  // fixed point, ScoreScale units per 1.0; 0 if unscored
}

// ScoreScale is the fixed-point scale of Tag.Score. Scores are integers so
// that no float formatting can make two hubs disagree.
const ScoreScale = 1_000_000

// Entry is what a block logs for one event: the event as the device sent
// it, which hub took it in and when, and the analyzers' tags.
type Entry struct {
	Event      Event
	HubID      string
	ReceivedMs int64 // hub receive time, Unix milliseconds
	Tags       []Tag
}

// Entry encoding (SPEC.md, "Entry"). All integers are big-endian; a str is
// a u32 byte length followed by the bytes:
//
//	u8   version (1)
//	str  hub_id
//	i64  received_ms
//	str  uid
//	i64  timestamp
//	str  namespace
//	str  device_uid
//	u32  item count, then per item: str key, value
//	u32  tag count, then per tag: str analyzer, str key, str label, str model, i64 score
//
// value = u8 kind, then: number (1) u64 IEEE-754 bits; string (2) str;
// bool (3) u8 0 or 1; array (4) u32 count and that many non-array values.

// AppendEncode appends the entry's encoding to dst.
func (en *Entry) AppendEncode(dst []byte) []byte {
	dst = append(dst, EntryVersion)
	dst = appendStr(dst, en.HubID)
	dst = binary.BigEndian.AppendUint64(dst, uint64(en.ReceivedMs))
	ev := &en.Event
	dst = appendStr(dst, ev.UID)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ev.Timestamp))
	dst = appendStr(dst, ev.Namespace)
	dst = appendStr(dst, ev.DeviceUID)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(ev.Items)))
	for _, it := range ev.Items {
		dst = appendStr(dst, it.Key)
		dst = appendValue(dst, it.Value)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(en.Tags)))
	for _, t := range en.Tags {
		dst = appendStr(dst, t.Analyzer)
		dst = appendStr(dst, t.Key)
		dst = appendStr(dst, t.Label)
		dst = appendStr(dst, t.Model)
		dst = binary.BigEndian.AppendUint64(dst, uint64(t.Score))
	}
	return dst
}

// Encode returns the entry's encoding, in a slice of exactly its size:
// nodes keep many encodings in memory, and growing one by appending
// allocated it three or four times.
func (en *Entry) Encode() []byte { return en.AppendEncode(make([]byte, 0, en.EncodedLen())) }

// EncodedLen returns the length of the entry's encoding.
func (en *Entry) EncodedLen() int {
	ev := &en.Event
	n := 1 + strLen(en.HubID) + 8 + strLen(ev.UID) + 8 + strLen(ev.Namespace) + strLen(ev.DeviceUID) + 4
	for _, it := range ev.Items {
		n += strLen(it.Key) + valueLen(it.Value)
	}
	n += 4
	for _, t := range en.Tags {
		n += strLen(t.Analyzer) + strLen(t.Key) + strLen(t.Label) + strLen(t.Model) + 8
	}
	return n
}

func strLen(s string) int { return 4 + len(s) }

func valueLen(v Value) int {
	switch v.Kind {
	case KindNumber:
		return 1 + 8
	case KindString:
		return 1 + strLen(v.Str)
	case KindBool:
		return 1 + 1
	case KindArray:
		n := 1 + 4
		for _, el := range v.Array {
			n += valueLen(el)
		}
		return n
	}
	return 1
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func appendValue(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case KindNumber:
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(v.Num))
	case KindString:
		dst = appendStr(dst, v.Str)
	case KindBool:
		b := byte(0)
		if v.Bool {
			b = 1
		}
		dst = append(dst, b)
	case KindArray:
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v.Array)))
		for _, el := range v.Array {
			dst = appendValue(dst, el)
		}
	}
	return dst
}

// Digest returns SHA-256 of entry bytes: the "file digest" an
// OpenTimestamps client computes from a file holding exactly those bytes.
func Digest(entryBytes []byte) [32]byte { return sha256.Sum256(entryBytes) }

// LeafHash returns the RFC 6962 leaf hash of an entry, taken over its
// digest: SHA-256(0x00 || SHA-256(entry bytes)).
func LeafHash(entryBytes []byte) [32]byte {
	d := Digest(entryBytes)
	var buf [33]byte
	copy(buf[1:], d[:])
	return sha256.Sum256(buf[:])
}

// ErrEncoding is returned for bytes that are not a well-formed entry.
var ErrEncoding = errors.New("malformed entry encoding")

// DecodeEntry parses entry bytes and checks the event against lim. It
// refuses trailing bytes and non-canonical forms, so that an entry has
// exactly one encoding.
func DecodeEntry(b []byte, lim Limits) (*Entry, error) {
	d := decoder{b: b}
	if v := d.u8(); v != EntryVersion && d.err == nil {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrEncoding, v, EntryVersion)
	}
	en := &Entry{}
	en.HubID = d.str()
	en.ReceivedMs = int64(d.u64())
	en.Event.UID = d.str()
	en.Event.Timestamp = int64(d.u64())
	en.Event.Namespace = d.str()
	en.Event.DeviceUID = d.str()
	n := d.count(6) // smallest item: empty key + bool; count bounds n by the bytes left
	if n > 0 {
		en.Event.Items = make([]Item, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		it := Item{Key: d.str()}
		it.Value = d.value(true)
		en.Event.Items = append(en.Event.Items, it)
	}
	n = d.count(24) // smallest tag: four empty strs + score
	if n > 0 {
		en.Tags = make([]Tag, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		en.Tags = append(en.Tags, Tag{Analyzer: d.str(), Key: d.str(), Label: d.str(), Model: d.str(), Score: int64(d.u64())})
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrEncoding, len(d.b))
	}
	if err := checkIdent("hub_id", en.HubID, lim.MaxDeviceLen); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	if err := en.Event.Check(lim); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncoding, err)
	}
	return en, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrEncoding, what)
	}
	d.b = nil
}

func (d *decoder) u8() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u32() uint32 {
	if len(d.b) < 4 {
		d.fail("u32")
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("u64")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// count reads a u32 count and refuses one that the remaining bytes cannot
// hold, so a forged count cannot make the decoder allocate without bound.
func (d *decoder) count(minSize int) int {
	n := d.u32()
	if uint64(n)*uint64(minSize) > uint64(len(d.b)) {
		d.fail("list")
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.u32()
	if uint64(n) > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) value(top bool) Value {
	k := Kind(d.u8())
	switch k {
	case KindNumber:
		return Value{Kind: k, Num: math.Float64frombits(d.u64())}
	case KindString:
		return Value{Kind: k, Str: d.str()}
	case KindBool:
		switch d.u8() {
		case 0:
			return Value{Kind: k}
		case 1:
			return Value{Kind: k, Bool: true}
		}
		if d.err == nil {
			d.err = fmt.Errorf("%w: bool byte not 0 or 1", ErrEncoding)
		}
	case KindArray:
		if !top {
			break
		}
		n := d.count(2)
		arr := make([]Value, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			arr = append(arr, d.value(false))
		}
		return Value{Kind: k, Array: arr}
	}
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad value kind %d", ErrEncoding, k)
	}
	d.b = nil
	return Value{}
}

// Submission returns a copy of the entry without tags: what the hub signs
// and sends, and what its validator compares a block's entry against.
func (en *Entry) Submission() *Entry {
	c := *en
	c.Tags = nil
	return &c
}

// ContentHash identifies what a device sent, independent of which hub took
// it in and when: SHA-256 of the encoding of an entry holding only the
// event. Two events with one uid are the same event (a retransmit) exactly
// when their content hashes are equal.
func ContentHash(ev *Event) [32]byte {
	en := Entry{Event: *ev}
	return sha256.Sum256(en.AppendEncode(make([]byte, 0, 256)))
}
