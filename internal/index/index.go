// Package index keeps a node's SQLite index of its chain, for the queries
// the API and explorer serve: page through events by device, namespace,
// time, item key, tag or text.
//
// The index is derived data. The chain is the source of truth: every row is
// a pure function of (block height, block hash, mint time, entry index,
// entry bytes), so the index can be dropped and rebuilt (Reset, then
// AddBlocks from height 0) and `cissan verify data` can compare each row
// (Each, EachBlock) against the chain. After a crash the index may lag the
// chain; the node re-indexes the blocks at and above Height.
//
// The index holds where an event is, not what it says: a search returns
// Refs, (height, index) pairs, and the node reads each entry from its block
// store and derives the Row shown (RowOf). An event's row id is
// height<<32 | index, so (height, index) order is the table's own order and
// needs no index of its own; heights are therefore limited to MaxHeight.
//
// Schema (version 4):
//
//	blocks(height PK, hash, mint_time_ms, entry_count, tagged)
//	events(id PK = height<<32|idx, ts), index on (ts)
//	event_text(body, terms): contentless FTS5 (unicode61), rowid = events.id;
//	  body holds item keys, string values and numbers for Text, terms
//	  hex-encoded exact tokens for the device, namespace, key and tag
//	  filters
//
// Version 2 kept every field of an event in its row, and B-tree indexes on
// device_uid and namespace; indexing an event cost about 60% more and its
// row took 2.5 times the bytes. Version 3 dropped only those B-trees. There is no uid index: a node finds an
// event by uid through its block store's uid record (store.Locate), which
// it keeps anyway to refuse a uid twice.
package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Named errors. Errors the package returns wrap one of these where one
// applies, so callers can tell them apart with errors.Is.
var (
	// ErrIndexed: AddBlocks was given a block at a height already indexed.
	ErrIndexed = errors.New("block already indexed")
	// ErrGap: AddBlocks was given a block above the next height to index.
	ErrGap = errors.New("block height not consecutive")
	// ErrBadQuery: a Query field (cursor, limit, time range) is invalid.
	ErrBadQuery = errors.New("bad query")
	// ErrCorrupt: a stored row cannot be decoded. The index is derived
	// data, so this means it was damaged or tampered with; reindex.
	ErrCorrupt = errors.New("index row corrupt")

	errClosed = errors.New("index closed")
)

// MaxHeight is the highest block height the index can hold, because an
// event's row id is height<<32 | index in a signed 64-bit integer. At one
// block a second it lasts 68 years.
const MaxHeight = 1<<31 - 1

const schemaVersion = 4

// schema creates every table. Each statement is idempotent so that two
// processes opening a fresh file at once cannot trip over each other.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS blocks (
		height       INTEGER PRIMARY KEY,
		hash         BLOB NOT NULL,
		mint_time_ms INTEGER NOT NULL,
		entry_count  INTEGER NOT NULL,
		tagged       INTEGER NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS events (
		id INTEGER PRIMARY KEY,
		ts INTEGER NOT NULL
	)`,
	// Device and namespace filters go through event_text (see termsOf);
	// time ranges through this index.
	`CREATE INDEX IF NOT EXISTS events_ts ON events(ts)`,
	// body: the words Text searches; terms: exact-match tokens for the
	// Key and Tag filters (see termsOf). Contentless: the text lives in the
	// chain, the index keeps only tokens. columnsize=0 drops per-row sizes,
	// used only for ranking.
	`CREATE VIRTUAL TABLE IF NOT EXISTS event_text USING fts5(
		body, terms, content='', columnsize=0,
		tokenize='unicode61 remove_diacritics 2'
	)`,
}

// Index is a node's SQLite index of its chain. It is safe for concurrent
// use; writes (AddBlocks, Reset) are serialized.
type Index struct {
	db *sql.DB    // readers
	mu sync.Mutex // serializes writers and guards w
	// w is the one connection that writes. It keeps a larger page cache
	// than readers, for FTS5's merges, which read back the segments that
	// recent blocks wrote.
	w *sql.Conn

	ckptSig            chan struct{} // see checkpointLoop
	ckptStop, ckptDone chan struct{}
	ckptRunning        bool
	stopOnce           sync.Once
}

// writeCacheKiB is the page cache of the writing connection.
const writeCacheKiB = 32 << 10

// Open opens or creates the index at path.
func Open(path string) (*Index, error) {
	// SQLite reads the DSN as a URI, so the few characters that mean
	// something there are escaped in the path. synchronous(NORMAL) may lose
	// the last transactions on power loss, which is fine for derived data
	// the node re-indexes at startup. temp_store(MEMORY) keeps the
	// statement journals of multi-row inserts off disk. No connection
	// checkpoints on commit (wal_autocheckpoint(0)): checkpointLoop does,
	// beside the writer, so that no AddBlocks waits for a checkpoint (it
	// was a large part of AddBlocks' system time, and a block counts as
	// final only once indexed). _txlock=immediate takes the write lock at BEGIN, so a write
	// transaction never fails half-way on a lock upgrade when another
	// process writes too.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + esc + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=busy_timeout(5000)&_pragma=temp_store(MEMORY)" +
		"&_pragma=wal_autocheckpoint(0)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	ctx := context.Background()
	x := &Index{db: db, ckptSig: make(chan struct{}, 1), ckptStop: make(chan struct{}), ckptDone: make(chan struct{})}
	if x.w, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	if _, err := x.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, writeCacheKiB)); err != nil {
		x.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	if err := x.migrate(ctx); err != nil {
		x.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	// FTS5 merges its segments as they pile up: by default four of a
	// level into one of the next. Sixteen at a time writes each token about
	// half as often over the index's life, for a few more segments to read
	// per query; it was a tenth of the cost of indexing an event. It merges
	// a little with every write (automerge) unless a level reaches
	// crisismerge segments, when it merges the whole level at once; at the
	// default 16 that happened first every time, and one block's index
	// transaction took 0.7 s now and then instead of 60 ms. At 64 the
	// merging is spread out: the slowest of 150 blocks of 10,000 events
	// took 0.18 s, for the same total (BenchmarkAddBlocks's
	// slowest-block-ms). The settings live in the file,
	// so this also applies them to older indexes.
	for _, set := range []string{
		`INSERT INTO event_text(event_text, rank) VALUES('automerge', 16)`,
		`INSERT INTO event_text(event_text, rank) VALUES('crisismerge', 64)`,
	} {
		if _, err := x.w.ExecContext(ctx, set); err != nil {
			x.Close()
			return nil, fmt.Errorf("open index %s: %w", path, err)
		}
	}
	x.ckptRunning = true
	go x.checkpointLoop()
	return x, nil
}

// checkpointEvery is the least time between two checkpoints: each one
// writes every page changed since the last, so a page that many blocks
// change is written once per interval rather than once per block.
const checkpointEvery = time.Second

// checkpointLoop copies the write-ahead log into the database file after
// writes, at most once per checkpointEvery, on a connection of its own.
// PASSIVE never waits for the writer or readers: what it cannot copy now
// it copies next time, and SQLite starts the log over once all of it is.
func (x *Index) checkpointLoop() {
	defer close(x.ckptDone)
	for {
		select {
		case <-x.ckptStop:
			return
		case <-x.ckptSig:
		}
		// An error here (say, a full disk) leaves the log to grow until
		// the next checkpoint succeeds; AddBlocks reports such disks.
		_, _ = x.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		select {
		case <-x.ckptStop:
			return
		case <-time.After(checkpointEvery):
		}
	}
}

// wrote asks checkpointLoop for a checkpoint.
func (x *Index) wrote() {
	select {
	case x.ckptSig <- struct{}{}:
	default:
	}
}

func (x *Index) migrate(ctx context.Context) error {
	var v int
	if err := x.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch v {
	case schemaVersion:
		return nil
	case 0, 1, 2, 3:
	default:
		return fmt.Errorf("schema version %d, want %d: delete the index and reindex", v, schemaVersion)
	}
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer tx.Rollback()
	if v != 0 {
		// The index is derived: drop the old tables, and the ledger
		// indexes the chain again from height 0.
		for _, t := range []string{`event_text`, `events`, `blocks`} {
			if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
				return fmt.Errorf("drop schema version %d: %w", v, err)
			}
		}
	}
	for _, s := range schema {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// Close closes the database.
func (x *Index) Close() error {
	x.stopOnce.Do(func() {
		close(x.ckptStop)
		if x.ckptRunning {
			<-x.ckptDone
		}
	})
	x.mu.Lock()
	defer x.mu.Unlock()
	var werr error
	if x.w != nil {
		werr = x.w.Close()
		x.w = nil
	}
	if err := errors.Join(werr, x.db.Close()); err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	return nil
}

// CountTagged returns the number of indexed events that carry at least
// one analyzer tag. It sums a column of the blocks table, so callers count
// once and keep the figure current themselves.
func (x *Index) CountTagged(ctx context.Context) (int64, error) {
	var n int64
	if err := x.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(tagged), 0) FROM blocks`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count tagged events: %w", err)
	}
	return n, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func nextHeight(ctx context.Context, q queryer) (uint64, error) {
	var h int64
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(height) + 1, 0) FROM blocks`).Scan(&h); err != nil {
		return 0, fmt.Errorf("index height: %w", err)
	}
	return uint64(h), nil
}

// Height returns the number of blocks indexed, which is the next height to
// index.
func (x *Index) Height(ctx context.Context) (uint64, error) {
	return nextHeight(ctx, x.db)
}

// Count returns the number of events indexed.
func (x *Index) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := x.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// Reset drops every row, so that the index can be rebuilt from height 0.
// Freed pages stay in the file and are reused by the rebuild.
func (x *Index) Reset(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.w == nil {
		return fmt.Errorf("reset index: %w", errClosed)
	}
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reset index: %w", err)
	}
	defer tx.Rollback()
	for _, s := range []string{
		`DELETE FROM events`,
		`DELETE FROM blocks`,
		`INSERT INTO event_text(event_text) VALUES ('delete-all')`,
	} {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("reset index: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reset index: %w", err)
	}
	x.wrote()
	return nil
}
