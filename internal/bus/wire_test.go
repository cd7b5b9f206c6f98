package bus

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"cissan/internal/chain"
)

func TestWireRoundTrip(t *testing.T) {
	batch := &Batch{HubID: "hub-1", Seq: 42, Entries: [][]byte{[]byte("e1"), {}, []byte("e3")}, Signature: bytes.Repeat([]byte{1}, 64)}
	if got, err := DecodeBatch(EncodeBatch(batch)); err != nil || !reflect.DeepEqual(got, batch) {
		t.Errorf("batch: got %+v, %v", got, err)
	}
	refused := []Refusal{{UID: "u1", Reason: "uid used with other content"}, {UID: "u2"}}
	if got, err := DecodeRefusals(EncodeRefusals(refused)); err != nil || !reflect.DeepEqual(got, refused) {
		t.Errorf("refusals: got %+v, %v", got, err)
	}
	if got, err := DecodeRefusals(EncodeRefusals(nil)); err != nil || len(got) != 0 {
		t.Errorf("no refusals: got %+v, %v", got, err)
	}
	for _, h := range []uint64{1, 2} { // with and without controls
		if got, err := DecodeBlock(EncodeBlock(testBlock(h))); err != nil {
			t.Errorf("block %d: %v", h, err)
		} else {
			checkBlock(t, got, testBlock(h))
		}
	}
	v := testValidation("hub-2", 9)
	if got, err := DecodeValidation(EncodeValidation(v)); err != nil || !reflect.DeepEqual(got, v) {
		t.Errorf("validation: got %+v, %v", got, err)
	}
	if from, n, err := DecodeFetch(EncodeFetch(7, 64)); err != nil || from != 7 || n != 64 {
		t.Errorf("fetch: got %d, %d, %v", from, n, err)
	}
	if _, n, _ := DecodeFetch(EncodeFetch(0, -5)); n != 0 {
		t.Errorf("fetch of -5 blocks decodes as %d, want 0", n)
	}
	blocks := []*chain.Block{testBlock(3), testBlock(4)}
	if got, err := DecodeBlocks(EncodeBlocks(blocks)); err != nil || len(got) != 2 {
		t.Errorf("blocks: got %d, %v", len(got), err)
	} else {
		checkBlock(t, got[0], blocks[0])
		checkBlock(t, got[1], blocks[1])
	}
	re, err := DecodeError(EncodeError(chain.ErrInvalid))
	if err != nil || !errors.Is(re, chain.ErrInvalid) || !strings.Contains(re.Error(), "invalid") {
		t.Errorf("error reply: got %v, %v; want one matching chain.ErrInvalid", re, err)
	}
	re, err = DecodeError(EncodeError(errors.New("disk full")))
	if err != nil || errors.Is(re, chain.ErrInvalid) || re.Msg != "disk full" {
		t.Errorf("error reply: got %v, %v", re, err)
	}
}

// A decoded entry must not share spare capacity with the next one, or an
// append by the receiver would overwrite it.
func TestWireDecodedSlicesAreCapped(t *testing.T) {
	b, err := DecodeBatch(EncodeBatch(&Batch{Entries: [][]byte{[]byte("first"), []byte("second")}}))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(b.Entries[0], "XXXXXXXXXXXX"...)
	if string(b.Entries[1]) != "second" {
		t.Fatalf("appending to entry 0 changed entry 1 to %q", b.Entries[1])
	}
}

func TestWireRefusesMalformed(t *testing.T) {
	valid := EncodeBatch(&Batch{HubID: "hub-1", Seq: 1, Entries: [][]byte{[]byte("e")}, Signature: []byte("s")})
	block := EncodeBlock(testBlock(1))
	for _, c := range []struct {
		name   string
		decode func([]byte) error
		in     []byte
		want   string
	}{
		{"empty", decodeBatchErr, nil, "too short"},
		{"version", decodeBatchErr, append([]byte{2}, valid[1:]...), "version 2"},
		{"kind", decodeBatchErr, EncodeValidation(testValidation("h", 1)), "validation, want batch"},
		{"truncated", decodeBatchErr, valid[:len(valid)-1], "signature: length 1 exceeds the 0 bytes left"},
		{"trailing", decodeBatchErr, append(append([]byte{}, valid...), 0), "1 trailing bytes"},
		{"huge count", decodeBatchErr, []byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, "entries: count 4294967295 cannot fit"},
		{"huge length", decodeBatchErr, []byte{1, 1, 0xff, 0xff, 0xff, 0xff}, "hub_id: length 4294967295 exceeds"},
		{"bad header", func(p []byte) error { _, err := DecodeBlock(p); return err }, badMagic(block), "malformed block header"},
		{"short header", func(p []byte) error { _, err := DecodeBlock(p); return err }, []byte{1, 3, 0, 0, 0, 1, 0}, "malformed block header: 1 bytes"},
		{"error class", func(p []byte) error { _, err := DecodeError(p); return err }, []byte{1, 7, 9, 0, 0, 0, 0}, "unknown class 9"},
		{"refusal count", func(p []byte) error { _, err := DecodeRefusals(p); return err }, []byte{1, 2, 0, 0, 0, 1, 0, 0, 0, 0}, "count 1 cannot fit"},
	} {
		err := c.decode(c.in)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrMalformed saying %q", c.name, err, c.want)
		}
	}
}

func decodeBatchErr(p []byte) error { _, err := DecodeBatch(p); return err }

// badMagic corrupts the header magic inside an encoded block.
func badMagic(block []byte) []byte {
	p := append([]byte{}, block...)
	p[2+4] = 'X' // version, kind, header length, then the magic
	return p
}

// FuzzWireDecode feeds every decoder the same bytes: none may panic, and
// whatever one accepts must encode back to exactly those bytes.
func FuzzWireDecode(f *testing.F) {
	f.Add(EncodeBatch(&Batch{HubID: "hub-1", Seq: 3, Entries: [][]byte{[]byte("a"), {}}, Signature: []byte("sig")}))
	f.Add(EncodeRefusals([]Refusal{{UID: "u", Reason: "r"}}))
	f.Add(EncodeBlock(testBlock(1)))
	f.Add(EncodeValidation(testValidation("hub-1", 2)))
	f.Add(EncodeFetch(5, 64))
	f.Add(EncodeBlocks([]*chain.Block{testBlock(0), testBlock(1)}))
	f.Add(EncodeError(chain.ErrInvalid))
	f.Add([]byte{1, 6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		check := func(kind string, reencode func() []byte, err error) {
			if err == nil && !bytes.Equal(reencode(), p) {
				t.Fatalf("%s decoded but does not re-encode to the same bytes", kind)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: error %v does not wrap ErrMalformed", kind, err)
			}
		}
		b, err := DecodeBatch(p)
		check("batch", func() []byte { return EncodeBatch(b) }, err)
		r, err := DecodeRefusals(p)
		check("refusals", func() []byte { return EncodeRefusals(r) }, err)
		blk, err := DecodeBlock(p)
		check("block", func() []byte { return EncodeBlock(blk) }, err)
		v, err := DecodeValidation(p)
		check("validation", func() []byte { return EncodeValidation(v) }, err)
		from, n, err := DecodeFetch(p)
		check("fetch", func() []byte { return EncodeFetch(from, n) }, err)
		blks, err := DecodeBlocks(p)
		check("blocks", func() []byte { return EncodeBlocks(blks) }, err)
		re, err := DecodeError(p)
		check("error", func() []byte { return encodeRemote(re) }, err)
	})
}

// encodeRemote re-encodes a decoded error reply.
func encodeRemote(e *RemoteError) []byte { return EncodeError(plainError{e}) }

// plainError is e with e.Msg as its whole text.
type plainError struct{ *RemoteError }

func (e plainError) Error() string { return e.Msg }
