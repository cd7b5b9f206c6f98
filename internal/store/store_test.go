package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"cissan/internal/chain"
)

func testBlock(h uint64, entries ...string) *chain.Block {
	raws := make([][]byte, len(entries))
	for i, e := range entries {
		raws[i] = []byte(e)
	}
	return &chain.Block{Header: chain.Header{Height: h, EntryCount: uint64(len(raws))}, Signature: make([]byte, 64), Entries: raws}
}

func put(t *testing.T, s *Store, blk *chain.Block, uids ...string) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	if err := b.PutBlock(blk, uids); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if h, err := s.Height(); err != nil || h != 0 {
		t.Fatalf("empty store height = %d, %v", h, err)
	}
	put(t, s, testBlock(0, "a", "b"), "u1", "u2")
	put(t, s, testBlock(1, "c"), "u3")
	if h, _ := s.Height(); h != 2 {
		t.Fatalf("height %d, want 2", h)
	}
	blk, err := s.Block(0)
	if err != nil || len(blk.Entries) != 2 || string(blk.Entries[1]) != "b" {
		t.Fatalf("Block(0) = %+v, %v", blk, err)
	}
	locs, err := s.Locate("u3")
	if err != nil || !slices.Equal(locs, []Located{{Height: 1, Index: 0}}) {
		t.Fatalf("Locate(u3) = %+v, %v", locs, err)
	}
	if _, err := s.Locate("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Locate(nope) = %v, want ErrNotFound", err)
	}
	hashes, err := s.BlockHashes(2)
	if err != nil || hashes[1] != blk0Hash(t, s, 1) {
		t.Fatalf("BlockHashes = %v, %v", hashes, err)
	}

	b := s.NewBatch()
	v := &chain.Validation{HubID: "hub-1", Height: 1, Verdict: chain.Reject, Reason: "why", Signature: make([]byte, 64)}
	v.BlockHash[3] = 9
	if err := b.PutValidation(v); err != nil {
		t.Fatal(err)
	}
	if err := b.PutPool("p2", 2, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := b.PutPool("p1", 1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	vals, err := s.Validations(1)
	if err != nil || len(vals) != 1 || vals[0].Reason != "why" || vals[0].BlockHash != v.BlockHash || vals[0].Verdict != chain.Reject {
		t.Fatalf("Validations(1) = %+v, %v", vals, err)
	}
	var order []string
	if err := s.EachSeq(func(_ uint64, uid string) error { order = append(order, uid); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != "p1" || order[1] != "p2" {
		t.Fatalf("pool arrival order %v, want [p1 p2]", order)
	}
	b = s.NewBatch()
	if err := b.DeletePool("p1", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool("p1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted pool entry still there: %v", err)
	}
}

func TestDeletePools(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	for i, uid := range []string{"c", "a", "d", "b"} {
		if err := b.PutPool(uid, uint64(i+1), []byte(uid)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b = s.NewBatch()
	defer b.Close()
	if err := b.DeletePools([]string{"d", "c"}, []uint64{3}); err == nil {
		t.Fatal("DeletePools took two uids with one sequence number")
	}
	b = s.NewBatch()
	if err := b.DeletePools([]string{"d", "c"}, []uint64{3, 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	var pooled, queued []string
	if err := s.EachPool(func(uid string, _ []byte) error { pooled = append(pooled, uid); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.EachSeq(func(_ uint64, uid string) error { queued = append(queued, uid); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pooled) != "[a b]" || fmt.Sprint(queued) != "[a b]" {
		t.Fatalf("after deleting c and d: pool %v, arrival order %v; want [a b] both", pooled, queued)
	}
}

func blk0Hash(t *testing.T, s *Store, h uint64) chain.Hash {
	hdr, _, err := s.Header(h)
	if err != nil {
		t.Fatal(err)
	}
	return hdr.Hash()
}

// LocateAll answers as Locate does for every uid, stored or not, in the
// order asked, including uids that are prefixes of stored ones and repeats;
// also once the records sit in tables rather than the memtable.
func TestLocateAll(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, testBlock(0, "a", "b"), "u1", "u20")
	put(t, s, testBlock(1, "c", "d", "e"), "u3", "x", "u2")
	ask := []string{"zz", "u2", "u1", "u", "u20", "x", "nope", "u2", "u200", "u3"}
	check := func() {
		t.Helper()
		seen := 0
		err := s.LocateAll(ask, func(i int, locs []Located) error {
			if i != seen {
				t.Fatalf("called for %d, want %d", i, seen)
			}
			seen++
			want, err := s.Locate(ask[i])
			if (len(locs) > 0) != (err == nil) || !slices.Equal(want, locs) {
				t.Errorf("%q: LocateAll %+v, Locate %+v %v", ask[i], locs, want, err)
			}
			return nil
		})
		if err != nil || seen != len(ask) {
			t.Fatalf("LocateAll: %v after %d of %d", err, seen, len(ask))
		}
	}
	check()
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	check()
	stop := errors.New("stop")
	if err := s.LocateAll(ask, func(int, []Located) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn's error: got %v", err)
	}
}

// A uid record is one pair of uvarints per version of the event, and
// anything else is refused rather than misread.
func TestUIDRecordFormats(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for uid, want := range map[string][]Located{
		"one": {{Height: 1 << 40, Index: 70_000}},
		"two": {{Height: 3, Index: 1}, {Height: 1 << 40, Index: 70_000}},
	} {
		var rec []byte
		for _, l := range want {
			rec = appendLocation(rec, l.Height, l.Index)
		}
		if err := s.DB().Set(uidKey(uid), rec, nil); err != nil {
			t.Fatal(err)
		}
		if locs, err := s.Locate(uid); err != nil || !slices.Equal(locs, want) {
			t.Errorf("Locate(%s) = %+v, %v", uid, locs, err)
		}
	}
	for name, rec := range map[string][]byte{
		"empty":           {},
		"height only":     binary.AppendUvarint(nil, 5),
		"trailing byte":   append(appendLocation(nil, 5, 6), 0),
		"index too large": binary.AppendUvarint(binary.AppendUvarint(nil, 5), 1<<32),
		"cut varint":      {0x80},
	} {
		if err := s.DB().Set(uidKey(name), rec, nil); err != nil {
			t.Fatal(err)
		}
		if loc, err := s.Locate(name); err == nil {
			t.Errorf("Locate of a record %s = %+v, want an error", name, loc)
		}
		err := s.LocateAll([]string{name}, func(int, []Located) error { return nil })
		if err == nil {
			t.Errorf("LocateAll of a record %s: no error", name)
		}
	}
}

// A second version of an event (another content under its uid and device)
// adds its location to the event's uid record, and LocateUID finds every
// device's events of a uid, and no other uid's.
func TestVersionsAndLocateUID(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, testBlock(0, "a", "b", "c"), "e1/dev-a", "e1/dev-b", "e10/dev-a")
	put(t, s, testBlock(1, "d"), "e1/dev-a")
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	put(t, s, testBlock(2, "e"), "e1/dev-a")
	locs, err := s.Locate("e1/dev-a")
	if want := []Located{{0, 0}, {1, 0}, {2, 0}}; err != nil || !slices.Equal(locs, want) {
		t.Fatalf("Locate(e1/dev-a) = %v, %v; want %v", locs, err, want)
	}
	got, err := s.LocateUID("e1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].DeviceUID != "dev-a" || len(got[0].At) != 3 || got[1].DeviceUID != "dev-b" || !slices.Equal(got[1].At, []Located{{0, 1}}) {
		t.Fatalf("LocateUID(e1) = %+v", got)
	}
	if got, err := s.LocateUID("e"); err != nil || len(got) != 0 {
		t.Fatalf("LocateUID(e) = %+v, %v; want nothing (uids are whole)", got, err)
	}
}

// A chain written before uids were scoped to their device is refused at
// open, with a reason, rather than read as if it held no event.
func TestOldFormatRefused(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, testBlock(0, "a"), "e1/dev-a")
	if err := s.DB().Delete(metaKey(formatMeta), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open("db", Options{FS: fs}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "start a new data dir") {
		t.Fatalf("open of an old-format store: %v, want ErrFormat saying what to do", err)
	}
}
