package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// readBack checks that s holds blocks 0..n-1 as putBlocks wrote them.
func readBack(t *testing.T, s *Store, n int) {
	t.Helper()
	if h, err := s.Height(); err != nil || h != uint64(n) {
		t.Fatalf("height %d, %v; want %d", h, err, n)
	}
	for h := range n {
		blk, err := s.Block(uint64(h))
		if err != nil || len(blk.Entries) != 2 || string(blk.Entries[1]) != fmt.Sprint("entry ", h, ".1") {
			t.Fatalf("Block(%d) = %+v, %v", h, blk, err)
		}
		e, err := s.Entry(uint64(h), 0)
		if err != nil || string(e) != fmt.Sprint("entry ", h, ".0") {
			t.Fatalf("Entry(%d, 0) = %q, %v", h, e, err)
		}
	}
	var entries int
	if err := s.EachRecord(func(k, _ []byte) error {
		if k[0] == 'e' {
			entries++
		}
		return nil
	}); err != nil || entries != 2*n {
		t.Fatalf("EachRecord saw %d entries, %v; want %d", entries, err, 2*n)
	}
}

func putBlocks(t *testing.T, s *Store, from, to int) {
	t.Helper()
	for h := from; h < to; h++ {
		put(t, s, testBlock(uint64(h), fmt.Sprint("entry ", h, ".0"), fmt.Sprint("entry ", h, ".1")), fmt.Sprint("u", h, ".0"), fmt.Sprint("u", h, ".1"))
	}
}

// inMain reports whether the main database holds key itself.
func inMain(t *testing.T, s *Store, key []byte) bool {
	t.Helper()
	_, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	closer.Close()
	return true
}

func TestEntriesHaveADatabaseOfTheirOwn(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	putBlocks(t, s, 0, 3)
	if s.entries == s.db || inMain(t, s, entryKey(1, 0)) {
		t.Fatal("a new store keeps its entries in its main database")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(fs.PathJoin("db", entriesDir)); err != nil {
		t.Fatalf("entries' database: %v", err)
	}
	for _, ro := range []bool{true, false} {
		s, err := Open("db", Options{FS: fs, ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		readBack(t, s, 3)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreWithOneDatabase: a store created before entries had a database
// of their own keeps them in its main one, and is read and written as
// before.
func TestStoreWithOneDatabase(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs, oneDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	putBlocks(t, s, 0, 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		s, err := Open("db", Options{FS: fs, ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		if s.entries != s.db {
			t.Fatalf("read-only %v: a store with entries in its main database got a second one", ro)
		}
		if !ro {
			putBlocks(t, s, 2, 3)
			if !inMain(t, s, entryKey(2, 1)) {
				t.Fatal("a new block's entries are not in the main database")
			}
		}
		readBack(t, s, 2+btoi(!ro))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fs.Stat(fs.PathJoin("db", entriesDir)); err == nil {
		t.Fatal("the entries' database was created for a store that keeps entries in its main one")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestOpenDropsEntriesAboveHeight: a crash after a block's entries were
// written but before the rest leaves entries of a block the store does not
// hold; the block is stored again later, perhaps with fewer entries.
func TestOpenDropsEntriesAboveHeight(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	putBlocks(t, s, 0, 2)
	b := s.NewBatch()
	if err := b.PutBlock(testBlock(2, "lost 0", "lost 1", "lost 2"), []string{"x0", "x1", "x2"}); err != nil {
		t.Fatal(err)
	}
	if err := b.e.Commit(pebble.Sync); err != nil { // the entries' write, then the crash
		t.Fatal(err)
	}
	b.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Entry(2, 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("entry of a block never stored: %v", err)
	}
	if _, err := s.Locate("x0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("uid of a block never stored: %v", err)
	}
	putBlocks(t, s, 2, 3)
	readBack(t, s, 3)
	if e, err := s.Entry(2, 1); err != nil || !bytes.Equal(e, []byte("entry 2.1")) {
		t.Fatalf("Entry(2, 1) = %q, %v", e, err)
	}
}

// TestBlockEntriesDoNotShareCapacity: Block copies entries into shared
// buffers; appending to one entry must not write over the next.
func TestBlockEntriesDoNotShareCapacity(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putBlocks(t, s, 0, 1)
	blk, err := s.Block(0)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(blk.Entries[0], "overwrite"...)
	if string(blk.Entries[1]) != "entry 0.1" {
		t.Fatalf("entry 1 is %q after appending to entry 0", blk.Entries[1])
	}
}
