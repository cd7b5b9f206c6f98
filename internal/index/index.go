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
// The index is two SQLite files, shards that hold alternate blocks (see
// Shards), each with the same schema (version 5):
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
// row took 2.5 times the bytes. Version 3 dropped only those B-trees;
// version 4 was the same tables in one file, with exact-match tokens in
// hex. There is no uid index: a node finds an event by uid through its
// block store's uid record (store.Locate), which it keeps anyway to refuse
// a uid twice.
package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
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

const schemaVersion = 5

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

// Shards is the number of SQLite files the index is split into, by block
// height: shard k holds the blocks at heights h with h % Shards == k.
// SQLite lets one connection write a file at a time, and one writer
// indexes slower than a hub catching up checks and stores blocks; two
// files take two blocks at once (1.7 times one writer's rate on two
// cores). A search asks every shard and merges their pages.
const Shards = 2

// Index is a node's SQLite index of its chain. It is safe for concurrent
// use; writes (AddBlocks, Reset) are serialized.
type Index struct {
	shards [Shards]*shard
	// addMu serializes AddBlocks and Reset, so that the height each
	// reads holds until it has written.
	addMu sync.Mutex
}

// Open opens or creates the index whose first shard is the file at path;
// FileFor names the others.
func Open(path string) (*Index, error) {
	x := &Index{}
	for k := range x.shards {
		s, err := openShard(FileFor(path, uint64(k)), k)
		if err != nil {
			x.Close()
			return nil, err
		}
		x.shards[k] = s
	}
	return x, nil
}

// FileFor returns the file of the index at path that holds block height:
// path itself for shard 0, and path with "-k" before its extension for
// shard k (index.db, index-1.db).
func FileFor(path string, height uint64) string {
	k := height % Shards
	if k == 0 {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), k, ext)
}

// Close closes every shard.
func (x *Index) Close() error {
	var errs []error
	for _, s := range x.shards {
		if s != nil {
			errs = append(errs, s.close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	return nil
}

// eachShard runs fn on every shard at once and joins their errors.
func (x *Index) eachShard(fn func(s *shard) error) error {
	var errs [Shards]error
	var wg sync.WaitGroup
	for k, s := range x.shards {
		wg.Go(func() { errs[k] = fn(s) })
	}
	wg.Wait()
	return errors.Join(errs[:]...)
}

// CountTagged returns the number of indexed events that carry at least
// one analyzer tag. It sums a column of the blocks table, so callers count
// once and keep the figure current themselves.
func (x *Index) CountTagged(ctx context.Context) (int64, error) {
	n, err := x.sum(ctx, `SELECT COALESCE(SUM(tagged), 0) FROM blocks`)
	if err != nil {
		return 0, fmt.Errorf("count tagged events: %w", err)
	}
	return n, nil
}

// Count returns the number of events indexed.
func (x *Index) Count(ctx context.Context) (int64, error) {
	n, err := x.sum(ctx, `SELECT COUNT(*) FROM events`)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// sum adds up the integer query returns in every shard.
func (x *Index) sum(ctx context.Context, query string) (int64, error) {
	var total int64
	for _, s := range x.shards {
		var n int64
		if err := s.db.QueryRowContext(ctx, query).Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Height returns the number of blocks indexed, which is the next height to
// index: the lowest height a shard lacks.
func (x *Index) Height(ctx context.Context) (uint64, error) {
	h := uint64(math.MaxUint64)
	for _, s := range x.shards {
		n, err := s.next(ctx, s.db)
		if err != nil {
			return 0, err
		}
		h = min(h, n)
	}
	return h, nil
}

// Reset drops every row, so that the index can be rebuilt from height 0.
// Freed pages stay in the file and are reused by the rebuild.
func (x *Index) Reset(ctx context.Context) error {
	x.addMu.Lock()
	defer x.addMu.Unlock()
	if err := x.eachShard(func(s *shard) error { return s.reset(ctx) }); err != nil {
		return fmt.Errorf("reset index: %w", err)
	}
	return nil
}
