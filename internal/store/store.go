// Package store keeps a node's chain and pool in Pebble.
//
// Entries live in a Pebble database of their own (the directory
// "entries" inside the store's), the pool in another ("pool"), everything
// else in the store's main database. Entries are written once, in chain
// order, and never change: alone in their database, each flushed table
// holds a key range above every other, and Pebble moves it down the levels
// without rewriting it. Beside the uid records and pool records, whose
// keys are random, the same tables were rewritten at every level, which
// was most of the store's compaction work.
//
// Pool records live a second or two, from the event's arrival until a
// block logs it, and were most of what the main database's memtable took
// in: it filled every second, and each flush's uid records were merged
// into the bottom level, rewriting every uid record stored so far, about
// thirty times a minute. In a database of their own, a pool record
// usually meets its deletion in the memtable and neither reaches a table;
// the main database, left with the uid records, flushes a tenth as often.
//
// Storing a block writes its entries (synced), then the rest (synced
// too), then the deletion of the pool records it logs (not synced): the
// main database's height record says which blocks are stored. Open
// deletes any entries above it (and the ledger, opening the store, any
// pool record of an event the chain holds): what a crash between the
// writes, or before the deletions reach the disk, leaves behind. A store created before entries had a
// database of their own keeps them in the main one; a store created before
// the pool had one has its pool records moved there at Open.
//
// Key layout (all integers big-endian):
//
//	"b" height                -> header (182 bytes) || master signature (64)
//	"e" height idx(u32)       -> entry bytes (in the entries' database)
//	"c" height idx(u32)       -> control record bytes
//	"u" uid "/" device_uid    -> (uvarint height || uvarint idx)+, one per
//	                             version of the event (event.VersionKey)
//	"v" height hub_id         -> validation (see encodeValidation)
//	"p" version key           -> pool record (owner-defined bytes)
//	"q" seq                   -> version key (pool arrival order)
//	"m" name                  -> node metadata ("height", "format", ...)
//
// The store checks nothing about what it is given: the hub and master check
// blocks before they store them, and verify re-checks everything stored.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"

	"cissan/internal/chain"
)

// ErrNotFound is returned for a block, entry or key that is not stored.
var ErrNotFound = errors.New("not found")

// Store holds a node's Pebble databases.
type Store struct {
	db *pebble.DB
	// entries holds the "e" records; it is db itself in a store created
	// before entries had a database of their own.
	entries *pebble.DB
	// pool holds the "p" and "q" records; it is db itself in a store that
	// keeps them there (a read-only open of a store created before the pool
	// had a database of its own, or a test's oneDatabase store).
	pool     *pebble.DB
	readOnly bool
	fail     *failure // shared by the databases' loggers
}

// Options tune Open; the zero value is the production default.
type Options struct {
	FS       vfs.FS       // nil means the real filesystem
	ReadOnly bool         // for verifiers: refuse every write
	Log      *slog.Logger // where a failed write is reported; nil: nowhere

	oneDatabase bool // for tests: create a store as before entries and the pool had databases of their own
}

// entriesDir and poolDir are the directories of the entries' and the
// pool's databases, inside the store's directory.
const (
	entriesDir = "entries"
	poolDir    = "pool"
)

// Open opens or creates the database in dir.
func Open(dir string, o Options) (*Store, error) {
	fail := newFailure(o.Log)
	opts := &pebble.Options{FS: o.FS, Logger: pebbleLogger{fail}, ReadOnly: o.ReadOnly}
	// Pebble's default 8 MiB block cache is smaller than the index and
	// filter blocks of a few million uid records, so every uid lookup read
	// and decompressed blocks from the files again (a third of the CPU of
	// a lookup in the bench's profile).
	c := pebble.NewCache(cacheBytes)
	defer c.Unref()
	opts.Cache = c
	// A memtable of 16 MiB rather than Pebble's 4 MiB holds a second of
	// events at 30,000 a second: most pool records then meet their
	// deletion (see DeletePool) before a flush, and the tables it flushes
	// are fewer and larger, which cut compaction from a fifth of the
	// bench's CPU to about a tenth. The price is disk: Pebble keeps a few
	// old write-ahead logs of that size for reuse, about 70 MB per store
	// whatever the chain's size.
	opts.MemTableSize = memTableBytes
	// Every event is looked up by uid before it is stored (is it a
	// retransmit?), and almost always it is not there: bloom filters let
	// those misses skip reading the tables.
	opts.Levels = make([]pebble.LevelOptions, 7)
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// Flushed tables (L0) live a few seconds before a compaction rewrites
	// them into the levels below, which stay compressed: compressing them
	// cost a Snappy pass at the flush and another at the compaction.
	opts.Levels[0].Compression = pebble.NoCompression
	opts.Comparer = &comparer
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{db: db, entries: db, pool: db, readOnly: o.ReadOnly, fail: fail}
	if err := s.openEntries(dir, o, c); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := s.openPool(dir, o, c); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := s.checkFormat(); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

// openEntries opens the entries' database, creating it unless the store
// keeps its entries in the main database, and deletes entries above the
// stored height.
func (s *Store) openEntries(dir string, o Options, c *pebble.Cache) error {
	path, exists, err := subdir(o, dir, entriesDir)
	if err != nil {
		return err
	}
	if !exists {
		// A store with entries in its main database keeps them there;
		// so does a read-only open, which must not create anything.
		legacy, err := hasKey(s.db, []byte{'e'}, []byte{'e' + 1})
		if err != nil || legacy || o.oneDatabase || o.ReadOnly {
			return err
		}
	}
	opts := subOptions(o, c, s.fail)
	// Every entry read names an entry that is stored: bloom filters would
	// only cost their building. Tables here are moved down the levels and
	// never merged, so they keep the size they are flushed at. With
	// Pebble's default 4 MiB memtable, a block's entries (2.5 MB for
	// 10,000 events) were over half of it and went to a table of their
	// own: at 8,000 events a second, 594 tables in ten minutes. A 16 MiB
	// memtable takes blocks of up to 8 MB and is flushed whole (Pebble
	// cuts flushed tables at the first level's target size, 2 MiB by
	// default, hence the larger target).
	opts.MemTableSize = entriesMemTableBytes
	opts.Levels = []pebble.LevelOptions{{TargetFileSize: 2 * entriesMemTableBytes}}
	e, err := openSub(o, dir, path, !exists, opts)
	if err != nil {
		return fmt.Errorf("entries: %w", err)
	}
	s.entries = e
	if o.ReadOnly {
		return nil
	}
	if err := s.dropEntriesAboveHeight(); err != nil {
		return errors.Join(err, e.Close())
	}
	return nil
}

// openPool opens the pool's database, creating it unless the store keeps
// its pool in the main database (see Store.pool); moves there the pool
// records of a store created before the pool had a database of its own;
// and deletes the pool records of events the chain holds.
func (s *Store) openPool(dir string, o Options, c *pebble.Cache) error {
	path, exists, err := subdir(o, dir, poolDir)
	if err != nil || (!exists && (o.oneDatabase || o.ReadOnly)) {
		return err
	}
	opts := subOptions(o, c, s.fail)
	opts.MemTableSize = poolMemTableBytes
	p, err := openSub(o, dir, path, !exists, opts)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	s.pool = p
	if o.ReadOnly {
		return nil
	}
	if err := s.movePool(); err != nil {
		return fmt.Errorf("move pool records to %s: %w", path, err)
	}
	return nil
}

// Format is the layout of a store's records that this version reads and
// writes, kept in its metadata. Format 2 keys uid records by event.ID
// (uid and device) and pool records by event.VersionKey.
const Format = "2"

// ErrFormat is a store this version cannot read.
var ErrFormat = errors.New("store format")

// checkFormat refuses a store written in another format, and marks a new
// one with Format. A chain without the mark was written before uids were
// scoped to their device: its uid records name events by uid alone, and
// this version would find none of them.
func (s *Store) checkFormat() error {
	v, err := s.get(metaKey(formatMeta))
	switch {
	case err == nil && string(v) == Format:
		return nil
	case err == nil:
		return fmt.Errorf("%w %q: this cissan reads format %s", ErrFormat, v, Format)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	h, err := s.Height()
	if err != nil {
		return err
	}
	if h > 0 {
		return fmt.Errorf("%w: written by an earlier cissan, whose uid records are not scoped to a device; start a new data dir", ErrFormat)
	}
	if s.readOnly {
		return nil
	}
	return s.db.Set(metaKey(formatMeta), []byte(Format), pebble.Sync)
}

// formatMeta is the metadata name of the store's format.
const formatMeta = "format"

// subdir returns the path of the database directory name inside dir, and
// whether it exists.
func subdir(o Options, dir, name string) (string, bool, error) {
	fs := fsOf(o)
	path := fs.PathJoin(dir, name)
	_, err := fs.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return path, false, nil
	}
	return path, err == nil, err
}

func fsOf(o Options) vfs.FS {
	if o.FS == nil {
		return vfs.Default
	}
	return o.FS
}

// openSub opens the database at path, inside the store's directory dir.
// If it creates the database, it then syncs dir: Pebble syncs the
// directory it writes in, not the one that holds it, and a crash could
// otherwise lose the new directory with all that was written in it.
func openSub(o Options, dir, path string, create bool, opts *pebble.Options) (*pebble.DB, error) {
	db, err := pebble.Open(path, opts)
	if err != nil || !create {
		return db, err
	}
	d, err := fsOf(o).OpenDir(dir)
	if err == nil {
		err = errors.Join(d.Sync(), d.Close())
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sync %s: %w", dir, err)
	}
	return db, nil
}

// subOptions returns the options the entries' and the pool's databases
// start from: those of the main one, sharing its block cache.
func subOptions(o Options, c *pebble.Cache, fail *failure) *pebble.Options {
	return &pebble.Options{FS: o.FS, Logger: pebbleLogger{fail}, ReadOnly: o.ReadOnly, Cache: c, Comparer: &comparer}
}

// poolLo and poolHi bound the pool's records: "p" and "q".
var poolLo, poolHi = []byte{'p'}, []byte{'q' + 1}

// movePool moves pool records from the main database to the pool's: copied
// (synced), then deleted. A crash in between leaves them to be copied
// again; a record already copied is not set twice, which its single
// deletion (see DeletePool) would not undo.
func (s *Store) movePool() error {
	left, err := hasKey(s.db, poolLo, poolHi)
	if err != nil || !left {
		return err
	}
	b := s.pool.NewBatch()
	defer b.Close()
	err = eachIn(s.db, poolLo, poolHi, func(k, v []byte) error {
		_, closer, err := s.pool.Get(k)
		if err == nil {
			return closer.Close()
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
		return b.Set(k, v, nil)
	})
	if err != nil {
		return err
	}
	if err := s.write(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return err
	}
	return s.write(func() error { return s.db.DeleteRange(poolLo, poolHi, pebble.Sync) })
}

// dropEntriesAboveHeight deletes the entries of blocks the main database
// does not hold: what a crash left between a block's two writes.
func (s *Store) dropEntriesAboveHeight() error {
	h, err := s.Height()
	if err != nil {
		return err
	}
	lo, hi := binary.BigEndian.AppendUint64([]byte{'e'}, h), []byte{'e' + 1}
	left, err := hasKey(s.entries, lo, hi)
	if err != nil || !left {
		return err
	}
	if err := s.write(func() error { return s.entries.DeleteRange(lo, hi, pebble.Sync) }); err != nil {
		return fmt.Errorf("delete entries above height %d: %w", h, err)
	}
	return nil
}

// hasKey reports whether db has a key in [lo, hi).
func hasKey(db *pebble.DB, lo, hi []byte) (bool, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	found := it.First()
	return found, errors.Join(it.Error(), it.Close())
}

// dbFor returns the database that holds key.
func (s *Store) dbFor(key []byte) *pebble.DB {
	if len(key) == 0 {
		return s.db
	}
	switch key[0] {
	case 'e':
		return s.entries
	case 'p', 'q':
		return s.pool
	}
	return s.db
}

// comparer is Pebble's default byte order under the same name, so stores
// written before open as they were, plus a Split that makes a whole key
// its own prefix: the bloom filters hold whole keys either way, and
// LocateAll's prefix seeks need Split to consult them.
var comparer = func() pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Split = func(k []byte) int { return len(k) }
	return c
}()

// cacheBytes is the memory a store may use for its block cache and its
// memtables: Pebble counts each memtable against the cache it is given,
// so that with three memtables of 16 MiB (one per database) this leaves
// about 64 MiB for blocks. At 64 MiB in all, two 32 MiB memtables left
// nothing, and a catch-up's uid lookups read every block from the files:
// half the speed.
const cacheBytes = 112 << 20

// memTableBytes is the size of a store's memtable; Pebble keeps up to two
// while one is flushed.
const memTableBytes = 16 << 20

// entriesMemTableBytes is the size of the entries' database's memtable.
const entriesMemTableBytes = 16 << 20

// poolMemTableBytes is the size of the pool's memtable: at 30,000 events a
// second it holds about two seconds of pool records, about how long they
// live. As in the main database, Pebble keeps a few old write-ahead logs
// of that size for reuse: about 70 MB of disk, whatever the pool holds.
const poolMemTableBytes = 16 << 20

// Close flushes the memtables to tables and closes the databases. The
// flush costs a moment at shutdown; the next open then has no log to
// replay, and the directory holds only what the store keeps.
//
// A failed store (see ErrFailed) is not flushed, which would write its log
// again; Close returns its failure. If Pebble was stopped in the middle of
// the failed write (see pebbleLogger), its databases are left open:
// closing them would wait forever for locks it holds or a flush that
// ended.
func (s *Store) Close() error {
	var errs []error
	for _, db := range s.dbs() {
		if s.fail.wedged.Load() {
			break
		}
		if !s.readOnly && s.fail.get() == nil {
			if err := s.write(db.Flush); err != nil {
				errs = append(errs, fmt.Errorf("flush store: %w", err))
			}
		}
		if s.fail.wedged.Load() {
			break
		}
		errs = append(errs, db.Close())
	}
	return errors.Join(append([]error{s.fail.get()}, errs...)...)
}

// closeAll closes the databases open so far, after a failed Open.
func (s *Store) closeAll() {
	for _, db := range s.dbs() {
		db.Close()
	}
}

// dbs returns the store's databases, each once.
func (s *Store) dbs() []*pebble.DB {
	dbs := []*pebble.DB{s.db}
	for _, db := range []*pebble.DB{s.entries, s.pool} {
		if db != s.db {
			dbs = append(dbs, db)
		}
	}
	return dbs
}

// DB exposes the main database to tamper tests.
func (s *Store) DB() *pebble.DB { return s.db }

// DBFor exposes the database that holds key to tamper tests.
func (s *Store) DBFor(key []byte) *pebble.DB { return s.dbFor(key) }

func blockKey(h uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'b'}, h) }

func entryKey(h uint64, i uint32) []byte { return appendEntryKey(nil, h, i) }

func appendEntryKey(dst []byte, h uint64, i uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(append(dst, 'e'), h), i)
}

func controlKey(h uint64, i uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64([]byte{'c'}, h), i)
}

func uidKey(id string) []byte { return appendUIDKey(nil, id) }

func appendUIDKey(dst []byte, id string) []byte { return append(append(dst, 'u'), id...) }

func chunkKey(h uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'r'}, h) }

func validationPrefix(h uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'v'}, h) }

func poolKey(uid string) []byte { return append([]byte{'p'}, uid...) }

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'q'}, seq) }

func metaKey(name string) []byte { return append([]byte{'m'}, name...) }

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

func (s *Store) get(key []byte) ([]byte, error) {
	v, closer, err := s.dbFor(key).Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// Height returns the number of blocks stored: the height of the next block.
func (s *Store) Height() (uint64, error) {
	v, err := s.get(metaKey("height"))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read height: %w", err)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("read height: %d bytes stored", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Located is where an event's entry sits in the chain.
type Located struct {
	Height uint64
	Index  uint32
}

// Locate finds the entries logged for the event id (event.ID): one, or
// several in chain order when its device sent other contents under its uid
// through two hubs at once. An id never logged is ErrNotFound.
func (s *Store) Locate(id string) ([]Located, error) {
	v, err := s.get(uidKey(id))
	if err != nil {
		return nil, err
	}
	locs, err := decodeLocations(v)
	if err != nil {
		return nil, fmt.Errorf("uid record for %q: %w", id, err)
	}
	return locs, nil
}

// Logged is where the events of one device logged under a uid sit.
type Logged struct {
	DeviceUID string
	At        []Located
}

// LocateUID finds every event logged under uid, of any device, in device
// order. Unlike Locate it scans a range, which no bloom filter serves: it
// is for lookups by people (the API), not for every event.
func (s *Store) LocateUID(uid string) ([]Logged, error) {
	var out []Logged
	prefix := uidKey(uid + "/")
	err := s.each(prefix, func(k, v []byte) error {
		locs, err := decodeLocations(v)
		if err != nil {
			return fmt.Errorf("uid record for %q: %w", k[1:], err)
		}
		out = append(out, Logged{DeviceUID: string(k[len(prefix):]), At: locs})
		return nil
	})
	return out, err
}

// appendLocation appends one location to a uid record: the entry's height
// and index. A record holds no content hash: an id is found in the chain
// rarely (a retransmit, or a uid reused), and then the entry itself gives
// the event. A value of about 5 bytes rather than 37 halves what every
// event's uid record, key included, costs to write and to compact.
func appendLocation(dst []byte, h uint64, i uint32) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(dst, h), uint64(i))
}

// DecodeUIDRecord decodes the value of a uid record, for verifiers that
// read every record (EachRecord).
func DecodeUIDRecord(v []byte) ([]Located, error) { return decodeLocations(v) }

// decodeLocations reads a uid record: one location per version of the
// event, in the order they were logged (PutBlock merges each new one in).
func decodeLocations(v []byte) ([]Located, error) {
	var locs []Located
	for len(v) > 0 {
		h, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, errors.New("malformed height")
		}
		i, m := binary.Uvarint(v[n:])
		if m <= 0 || i > math.MaxUint32 {
			return nil, errors.New("malformed entry index")
		}
		locs = append(locs, Located{Height: h, Index: uint32(i)})
		v = v[n+m:]
	}
	if len(locs) == 0 {
		return nil, errors.New("empty record")
	}
	return locs, nil
}

// LocateAll looks up many ids through one iterator, in sorted order, and
// calls fn for each id (in the order given) with its locations, none if
// it is not logged. For a group of events it costs a fraction of one
// Locate per id: Locate sets up a new iterator over every level each
// time, while here the levels' tables stay open from one id to the next.
// Bloom filters still let an id that is not stored skip reading the tables.
func (s *Store) LocateAll(ids []string, fn func(i int, locs []Located) error) error {
	if len(ids) == 0 {
		return nil
	}
	order := sortedOrder(ids)
	// Pebble skips the bottom level's filters by default, for reads that
	// expect to find their key; almost every id here is new, and most
	// uid records are in the bottom level.
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'u'}, UpperBound: []byte{'u' + 1}, UseL6Filters: true})
	if err != nil {
		return fmt.Errorf("locate uids: %w", err)
	}
	defer it.Close()
	hits := make([][]Located, len(ids))
	key := make([]byte, 0, 64)
	for _, i := range order {
		key = appendUIDKey(key[:0], ids[i])
		if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
			continue
		}
		locs, err := decodeLocations(it.Value())
		if err != nil {
			return fmt.Errorf("uid record for %q: %w", ids[i], err)
		}
		hits[i] = locs
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("locate uids: %w", err)
	}
	for i, locs := range hits {
		if err := fn(i, locs); err != nil {
			return err
		}
	}
	return nil
}

// Header returns the header and master signature of block h.
func (s *Store) Header(h uint64) (*chain.Header, []byte, error) {
	v, err := s.get(blockKey(h))
	if err != nil {
		return nil, nil, fmt.Errorf("block %d: %w", h, err)
	}
	if len(v) != chain.HeaderSize+64 {
		return nil, nil, fmt.Errorf("block %d: record is %d bytes, want %d", h, len(v), chain.HeaderSize+64)
	}
	hdr, err := chain.DecodeHeader(v[:chain.HeaderSize])
	if err != nil {
		return nil, nil, fmt.Errorf("block %d: %w", h, err)
	}
	return hdr, v[chain.HeaderSize:], nil
}

// Entry returns the bytes of entry i of block h.
func (s *Store) Entry(h uint64, i uint32) ([]byte, error) {
	v, err := s.get(entryKey(h, i))
	if err != nil {
		return nil, fmt.Errorf("block %d entry %d: %w", h, i, err)
	}
	return v, nil
}

// ChunkRoots returns the chunk roots stored for block h (chain.ChunkRoots
// of its entries), or nil for a block of at most chain.ChunkSize entries.
func (s *Store) ChunkRoots(h uint64) ([]chain.Hash, error) {
	v, err := s.get(chunkKey(h))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("block %d chunk roots: %w", h, err)
	}
	if len(v)%len(chain.Hash{}) != 0 {
		return nil, fmt.Errorf("block %d chunk roots: %d bytes, not a multiple of 32", h, len(v))
	}
	out := make([]chain.Hash, len(v)/len(chain.Hash{}))
	for i := range out {
		copy(out[i][:], v[i*len(chain.Hash{}):])
	}
	return out, nil
}

// EntryPath returns entry i of block h, which has count entries, and its
// audit path in the block's entries tree. In a block with stored chunk
// roots it reads only the entries of i's chunk.
func (s *Store) EntryPath(h uint64, i uint32, count uint64) ([]byte, []chain.Hash, error) {
	roots, err := s.ChunkRoots(h)
	if err != nil {
		return nil, nil, err
	}
	from, to := uint64(0), count
	if roots != nil {
		from = uint64(i) / chain.ChunkSize * chain.ChunkSize
		to = min(from+chain.ChunkSize, count)
	}
	var entries [][]byte
	err = s.eachRange(entryKey(h, uint32(from)), entryKey(h, uint32(to)), func(_, v []byte) error {
		entries = append(entries, bytes.Clone(v))
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("block %d entries: %w", h, err)
	}
	if uint64(len(entries)) != to-from || uint64(i) >= to {
		return nil, nil, fmt.Errorf("block %d: %d of entries %d..%d stored", h, len(entries), from, to)
	}
	leaves := chain.EntryLeaves(entries)
	var path []chain.Hash
	if roots != nil {
		path, err = chain.ChunkedProof(leaves, roots, uint64(i))
	} else {
		path, err = chain.InclusionProof(leaves, uint64(i))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("block %d: %w", h, err)
	}
	return entries[uint64(i)-from], path, nil
}

// Block returns block h with its entries.
func (s *Store) Block(h uint64) (*chain.Block, error) {
	hdr, sig, err := s.Header(h)
	if err != nil {
		return nil, err
	}
	b := &chain.Block{Header: *hdr, Signature: sig, Entries: make([][]byte, 0, hdr.EntryCount)}
	lo, hi := binary.BigEndian.AppendUint64([]byte{'e'}, h), binary.BigEndian.AppendUint64([]byte{'e'}, h+1)
	it, err := s.entries.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	// The entries are copied into a few large buffers rather than one
	// allocation each: a block holds tens of thousands.
	var buf []byte
	for it.First(); it.Valid(); it.Next() {
		if want := uint32(len(b.Entries)); binary.BigEndian.Uint32(it.Key()[9:]) != want {
			return nil, fmt.Errorf("block %d: entry %d missing", h, want)
		}
		v := it.Value()
		if len(buf)+len(v) > cap(buf) {
			buf = make([]byte, 0, max(entryBufBytes, len(v)))
		}
		n := len(buf)
		buf = append(buf, v...)
		b.Entries = append(b.Entries, buf[n:len(buf):len(buf)])
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("block %d entries: %w", h, err)
	}
	lo, hi = binary.BigEndian.AppendUint64([]byte{'c'}, h), binary.BigEndian.AppendUint64([]byte{'c'}, h+1)
	err = s.eachRange(lo, hi, func(_, v []byte) error {
		b.Controls = append(b.Controls, bytes.Clone(v))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("block %d control records: %w", h, err)
	}
	return b, nil
}

// entryBufBytes is the size of the buffers Block copies entries into.
const entryBufBytes = 1 << 20

// BlockHashes returns the hashes of blocks 0..n-1, for history roots.
func (s *Store) BlockHashes(n uint64) ([]chain.Hash, error) {
	out := make([]chain.Hash, 0, n)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: blockKey(0), UpperBound: blockKey(n)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if len(v) < chain.HeaderSize {
			return nil, fmt.Errorf("block %d: short record", binary.BigEndian.Uint64(it.Key()[1:]))
		}
		hdr, err := chain.DecodeHeader(v[:chain.HeaderSize])
		if err != nil {
			return nil, err
		}
		out = append(out, hdr.Hash())
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if uint64(len(out)) != n {
		return nil, fmt.Errorf("block hashes: %d of %d blocks stored", len(out), n)
	}
	return out, nil
}

// Batch is an atomic write. Nothing is visible until Commit.
type Batch struct {
	s *Store
	b *pebble.Batch
	// e holds the entries of a block batch, if the store keeps them in a
	// database of their own (see the package doc); otherwise nil.
	e *pebble.Batch
	// p holds the pool's records, if the store keeps them in a database of
	// their own; otherwise nil.
	p *pebble.Batch
	// poolPuts: p holds new pool records, not only deletions.
	poolPuts bool
}

// NewBatch starts an atomic write.
func (s *Store) NewBatch() *Batch { return &Batch{s: s, b: s.db.NewBatch()} }

// NewBlockBatch starts an atomic write that will hold blk, sized for it
// up front: a block's batch is megabytes, and grown by doubling from a
// kilobyte it was allocated twice over.
func (s *Store) NewBlockBatch(blk *chain.Block) *Batch {
	n, ne := 4<<10, 0
	for _, e := range blk.Entries {
		ne += len(e) + blockRecordOverhead
	}
	for _, c := range blk.Controls {
		n += len(c) + blockRecordOverhead
	}
	if s.entries == s.db {
		return &Batch{s: s, b: s.db.NewBatchWithSize(n + ne)}
	}
	return &Batch{s: s, b: s.db.NewBatchWithSize(n + len(blk.Entries)*blockRecordOverhead), e: s.entries.NewBatchWithSize(ne)}
}

// blockRecordOverhead is about what PutBlock writes per entry besides its
// bytes: the entry's key, its uid record (uids are at most 128 bytes, most
// far shorter) and the batch's framing of both.
const blockRecordOverhead = 128

// Commit applies the batch and syncs it to disk before returning: a
// block's entries first, then the main database's records, which name the
// block stored, then the pool's (see the package doc).
//
// Pool deletions alone are not synced: the pool records a crash keeps
// name events the chain holds, and Open deletes those. A block's pool
// deletions were the third sync on the way from minting to finality, on
// master and hub alike (7-19 ms per block of 18,000 events each).
func (b *Batch) Commit() error {
	pool := pebble.NoSync
	if b.poolPuts {
		pool = pebble.Sync
	}
	for _, part := range []struct {
		name string
		pb   *pebble.Batch
		opts *pebble.WriteOptions
	}{{"entries", b.e, pebble.Sync}, {"records", b.b, pebble.Sync}, {"pool", b.p, pool}} {
		if part.pb == nil || part.pb.Empty() {
			continue
		}
		if err := b.s.write(func() error { return part.pb.Commit(part.opts) }); err != nil {
			return fmt.Errorf("commit %s: %w", part.name, err)
		}
	}
	b.Close()
	return nil
}

// Close discards an uncommitted batch; after Commit it does nothing.
// Closing returns the pebble batches to a pool that other goroutines draw
// from: it must happen once only.
func (b *Batch) Close() {
	for _, pb := range []**pebble.Batch{&b.e, &b.b, &b.p} {
		if *pb != nil {
			_ = (*pb).Close()
			*pb = nil
		}
	}
}

// poolBatch returns the batch that takes pool records.
func (b *Batch) poolBatch() *pebble.Batch {
	if b.s.pool == b.s.db {
		return b.b
	}
	if b.p == nil {
		b.p = b.s.pool.NewBatch()
	}
	return b.p
}

// sortedOrder returns the indexes of keys in the keys' sorted order.
func sortedOrder(keys []string) []int {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	return order
}

// PutBlock writes block h, its entries, its uid records (ids[i] is entry
// i's event.ID) and the new height.
//
// A uid record is merged, not set: Pebble's default merger appends the
// new location to any the record holds, so a second version of an event
// (see event.VersionKey) adds to its record without a read here.
//
// It writes the entries, then the uid records in key order. Pebble adds a
// batch to its memtable in the batch's order, and each insertion starts
// its search of the skiplist from where the last one ended: alternating
// between an entry and a uid record made every insertion search the whole
// list, and sorting halved the time to apply a block's batch
// (BenchmarkCatchUp1M's profile).
func (b *Batch) PutBlock(blk *chain.Block, ids []string) error {
	h := blk.Header.Height
	rec := append(blk.Header.Encode(), blk.Signature...)
	if err := b.b.Set(blockKey(h), rec, nil); err != nil {
		return err
	}
	// The batch copies keys and values, so one scratch buffer serves
	// every entry.
	var key, loc []byte
	eb := b.b
	if b.s.entries != b.s.db {
		if b.e == nil {
			b.e = b.s.entries.NewBatch()
		}
		eb = b.e
	}
	for i, e := range blk.Entries {
		key = appendEntryKey(key[:0], h, uint32(i))
		if err := eb.Set(key, e, nil); err != nil {
			return err
		}
	}
	for _, i := range sortedOrder(ids) {
		key, loc = appendUIDKey(key[:0], ids[i]), appendLocation(loc[:0], h, uint32(i))
		if err := b.b.Merge(key, loc, nil); err != nil {
			return err
		}
	}
	for i, c := range blk.Controls {
		if err := b.b.Set(controlKey(h, uint32(i)), c, nil); err != nil {
			return err
		}
	}
	if len(blk.Entries) > chain.ChunkSize {
		// The chunk roots let a proof read one chunk of entries rather
		// than the whole block (EntryPath).
		roots := blk.ChunkRoots()
		rec := make([]byte, 0, len(roots)*len(chain.Hash{}))
		for _, r := range roots {
			rec = append(rec, r[:]...)
		}
		if err := b.b.Set(chunkKey(h), rec, nil); err != nil {
			return err
		}
	}
	return b.b.Set(metaKey("height"), binary.BigEndian.AppendUint64(nil, h+1), nil)
}

// PutValidation records a hub's validation of a block.
func (b *Batch) PutValidation(v *chain.Validation) error {
	return b.b.Set(append(validationPrefix(v.Height), v.HubID...), encodeValidation(v), nil)
}

// PutPool records a pool entry under uid, with its arrival sequence
// number (0 for pools that need no order).
func (b *Batch) PutPool(uid string, seq uint64, rec []byte) error {
	pb := b.poolBatch()
	b.poolPuts = true
	if err := pb.Set(poolKey(uid), rec, nil); err != nil {
		return err
	}
	if seq == 0 {
		return nil
	}
	return pb.Set(seqKey(seq), []byte(uid), nil)
}

// DeletePool removes a pool entry (and its sequence record, if any).
//
// It writes single deletes: a pool record is set once between two
// deletions (nodes pool a uid only when neither pool nor chain holds it),
// so a compaction, or a memtable flush, that meets the record and its
// deletion drops both. A plain deletion would instead travel down every
// level of the tree, rewritten at each, for every event ever pooled; that
// was a third of the store's compaction work. A second deletion of a
// record already gone is harmless.
func (b *Batch) DeletePool(uid string, seq uint64) error {
	pb := b.poolBatch()
	if err := pb.SingleDelete(poolKey(uid), nil); err != nil {
		return err
	}
	if seq == 0 {
		return nil
	}
	return pb.SingleDelete(seqKey(seq), nil)
}

// DeletePools removes many pool entries as DeletePool does: uids[i]'s
// sequence number is seqs[i], or 0 if seqs is nil. It writes the deletions
// in key order, as PutBlock writes uid records.
func (b *Batch) DeletePools(uids []string, seqs []uint64) error {
	if seqs != nil && len(seqs) != len(uids) {
		return fmt.Errorf("delete pool entries: %d uids but %d sequence numbers", len(uids), len(seqs))
	}
	for _, i := range sortedOrder(uids) {
		if err := b.DeletePool(uids[i], 0); err != nil {
			return err
		}
	}
	for _, seq := range seqs {
		if seq == 0 {
			continue
		}
		if err := b.poolBatch().SingleDelete(seqKey(seq), nil); err != nil {
			return err
		}
	}
	return nil
}

// PutMeta records node metadata.
func (b *Batch) PutMeta(name string, v []byte) error { return b.b.Set(metaKey(name), v, nil) }

// DeleteMeta removes node metadata.
func (b *Batch) DeleteMeta(name string) error { return b.b.Delete(metaKey(name), nil) }

// Meta reads node metadata.
func (s *Store) Meta(name string) ([]byte, error) { return s.get(metaKey(name)) }

// Pool returns the pool record for uid.
func (s *Store) Pool(uid string) ([]byte, error) { return s.get(poolKey(uid)) }

// EachPool calls fn for every pool record in uid order. rec is fn's to
// keep (the hub keeps it as its submission bytes).
func (s *Store) EachPool(fn func(uid string, rec []byte) error) error {
	return s.each([]byte{'p'}, func(k, v []byte) error { return fn(string(k[1:]), bytes.Clone(v)) })
}

// EachSeq calls fn for every pool sequence record in arrival order.
func (s *Store) EachSeq(fn func(seq uint64, uid string) error) error {
	return s.each([]byte{'q'}, func(k, v []byte) error { return fn(binary.BigEndian.Uint64(k[1:]), string(v)) })
}

func (s *Store) each(prefix []byte, fn func(k, v []byte) error) error {
	return s.eachRange(prefix, prefixEnd(prefix), fn)
}

// eachRange calls fn for every key in [lo, hi), which must not span
// databases (see dbFor) unless the store has one.
func (s *Store) eachRange(lo, hi []byte, fn func(k, v []byte) error) error {
	return eachIn(s.dbFor(lo), lo, hi, fn)
}

func eachIn(db *pebble.DB, lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// EachRecord calls fn for every key and value in the store, in key order,
// for verifiers that must account for every record.
func (s *Store) EachRecord(fn func(k, v []byte) error) error {
	// Key ranges, in key order, that each lie in one database.
	bounds := [][]byte{nil, {'e'}, {'e' + 1}, poolLo, poolHi, nil}
	for i := 0; i+1 < len(bounds); i++ {
		if err := eachIn(s.dbFor(bounds[i]), bounds[i], bounds[i+1], fn); err != nil {
			return err
		}
	}
	return nil
}

// EachControl calls fn for every stored control record in chain order.
func (s *Store) EachControl(fn func(height uint64, rec []byte) error) error {
	return s.each([]byte{'c'}, func(k, v []byte) error { return fn(binary.BigEndian.Uint64(k[1:]), bytes.Clone(v)) })
}

// Validations returns the validations stored for block h.
func (s *Store) Validations(h uint64) ([]chain.Validation, error) {
	var out []chain.Validation
	p := validationPrefix(h)
	err := s.each(p, func(k, v []byte) error {
		val, err := decodeValidation(string(k[len(p):]), h, v)
		if err != nil {
			return fmt.Errorf("validation of block %d by %q: %w", h, k[len(p):], err)
		}
		out = append(out, val)
		return nil
	})
	return out, err
}

// Validation record: verdict (1) || block hash (32) || signature (64) || reason.
func encodeValidation(v *chain.Validation) []byte {
	b := make([]byte, 0, 97+len(v.Reason))
	b = append(b, byte(v.Verdict))
	b = append(b, v.BlockHash[:]...)
	b = append(b, v.Signature...)
	return append(b, v.Reason...)
}

func decodeValidation(hub string, h uint64, b []byte) (chain.Validation, error) {
	if len(b) < 97 {
		return chain.Validation{}, fmt.Errorf("record is %d bytes, want at least 97", len(b))
	}
	v := chain.Validation{HubID: hub, Height: h, Verdict: chain.Verdict(b[0]), Signature: bytes.Clone(b[33:97]), Reason: string(b[97:])}
	copy(v.BlockHash[:], b[1:33])
	return v, nil
}
