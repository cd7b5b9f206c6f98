package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// pooled is one pool record as the tests write it: the master's carry a
// sequence number, the hub's do not (0).
type pooled struct {
	uid string
	seq uint64
}

func putPool(t *testing.T, s *Store, recs ...pooled) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	for _, r := range recs {
		if err := b.PutPool(r.uid, r.seq, []byte("rec "+r.uid)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// poolOf returns the pool records of s in uid order, each as uid=seq (seq
// 0 if it has no sequence record), and checks each record's value.
func poolOf(t *testing.T, s *Store) []string {
	t.Helper()
	seqs := map[string]uint64{}
	if err := s.EachSeq(func(seq uint64, uid string) error {
		if _, dup := seqs[uid]; dup {
			return fmt.Errorf("%q queued twice", uid)
		}
		seqs[uid] = seq
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := s.EachPool(func(uid string, rec []byte) error {
		if string(rec) != "rec "+uid {
			return fmt.Errorf("pool record of %q is %q", uid, rec)
		}
		out = append(out, fmt.Sprint(uid, "=", seqs[uid]))
		delete(seqs, uid)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seqs) > 0 {
		t.Fatalf("sequence records without pool records: %v", seqs)
	}
	return out
}

func wantPool(t *testing.T, s *Store, want ...string) {
	t.Helper()
	if got := poolOf(t, s); !slices.Equal(got, want) {
		t.Fatalf("pool %v, want %v", got, want)
	}
}

// poolInMain reports whether the main database holds any pool record.
func poolInMain(t *testing.T, s *Store) bool {
	t.Helper()
	found, err := hasKey(s.db, poolLo, poolHi)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func reopen(t *testing.T, fs vfs.FS, s *Store, o Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o.FS = fs
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPoolHasADatabaseOfItsOwn(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	putPool(t, s, pooled{"a", 1}, pooled{"b", 2})
	if s.pool == s.db || poolInMain(t, s) {
		t.Fatal("a new store keeps its pool in its main database")
	}
	var records int
	if err := s.EachRecord(func(k, _ []byte) error {
		if k[0] == 'p' || k[0] == 'q' {
			records++
		}
		return nil
	}); err != nil || records != 4 {
		t.Fatalf("EachRecord saw %d pool records, %v; want 4", records, err)
	}
	s = reopen(t, fs, s, Options{ReadOnly: true})
	defer s.Close()
	wantPool(t, s, "a=1", "b=2")
}

// TestPoolMovesOutOfTheMainDatabase: a store created before the pool had a
// database of its own is read as it is by verifiers, and has its pool
// moved at the first open that may write.
func TestPoolMovesOutOfTheMainDatabase(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs, oneDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	putPool(t, s, pooled{"m1", 1}, pooled{"m2", 2}, pooled{"h", 0})
	putBlocks(t, s, 0, 1)
	s = reopen(t, fs, s, Options{ReadOnly: true})
	if s.pool != s.db {
		t.Fatal("a read-only open made the pool a database of its own")
	}
	wantPool(t, s, "h=0", "m1=1", "m2=2")
	s = reopen(t, fs, s, Options{})
	if s.pool == s.db || poolInMain(t, s) {
		t.Fatal("the pool is still in the main database")
	}
	wantPool(t, s, "h=0", "m1=1", "m2=2")
	readBack(t, s, 1)
	s = reopen(t, fs, s, Options{})
	defer s.Close()
	wantPool(t, s, "h=0", "m1=1", "m2=2")
}

// TestPoolMoveIsRedoneAfterACrash: a crash between copying the pool and
// deleting it from the main database leaves records in both. The next
// open moves them again without setting a record twice: its single
// deletion would take the newer setting away and leave the older one.
func TestPoolMoveIsRedoneAfterACrash(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	putPool(t, s, pooled{"a", 1})
	for _, r := range []pooled{{"a", 1}, {"b", 2}} { // as the crash left them
		if err := s.db.Set(poolKey(r.uid), []byte("rec "+r.uid), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Set(seqKey(r.seq), []byte(r.uid), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, fs, s, Options{}) // Close flushes "a" to a table
	defer s.Close()
	if poolInMain(t, s) {
		t.Fatal("pool records left in the main database")
	}
	wantPool(t, s, "a=1", "b=2")
	b := s.NewBatch()
	defer b.Close()
	if err := b.DeletePool("a", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.Flush(); err != nil {
		t.Fatal(err)
	}
	wantPool(t, s, "b=2")
}

// A block's pool deletions are not synced; the block and new pool records
// are. After a crash that loses what was not synced, the block is there
// and so are the pool records of the events it logs, which the ledger
// deletes when it opens the store (ledger's TestOpenDropsLoggedPoolRecords).
func TestPoolDeletionsNeedNoSync(t *testing.T) {
	fs := vfs.NewStrictMem()
	syncDir(t, fs, "db")
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	putPool(t, s, pooled{"u0.0", 1}, pooled{"u0.1", 2}, pooled{"waiting", 3})
	putBlocks(t, s, 0, 1) // logs u0.0 and u0.1
	b := s.NewBatch()
	if err := b.DeletePools([]string{"u0.0", "u0.1"}, []uint64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	wantPool(t, s, "waiting=3")
	// The crash: nothing more reaches the disk, and what was not synced
	// is lost.
	fs.SetIgnoreSyncs(true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
	s, err = Open("db", Options{FS: fs, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := poolOf(t, s); len(got) != 3 {
		t.Fatalf("after the crash the pool holds %v; the deletions were synced, or the records were not", got)
	}
	readBack(t, s, 1)
	s.Close()
}

// syncDir creates dir in a strict in-memory FS, durably: the store's own
// syncs make what it writes inside dir durable, not dir itself.
func syncDir(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := fs.OpenDir("")
	if err == nil {
		err = errors.Join(d.Sync(), d.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
}
