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

// shard is one SQLite file of the index: the blocks at heights h with
// h % Shards == k, and their events. Each has its own writing connection,
// so shards take blocks at the same time.
type shard struct {
	k  int
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

// writeCacheKiB is the page cache of a shard's writing connection: the
// two hold as much as one file's writer did, for half the rows each
// (slower indexing with less did not show over 800,000 events).
const writeCacheKiB = 16 << 10

// openShard opens or creates shard k at path.
func openShard(path string, k int) (*shard, error) {
	// SQLite reads the DSN as a URI, so the few characters that mean
	// something there are escaped in the path. synchronous(NORMAL) may lose
	// the last transactions on power loss, which is fine for derived data
	// the node re-indexes at startup. temp_store(MEMORY) keeps the
	// statement journals of multi-row inserts off disk. No connection
	// checkpoints on commit (wal_autocheckpoint(0)): checkpointLoop does,
	// beside the writer, so that no AddBlocks waits for a checkpoint (it
	// was a large part of AddBlocks' system time). _txlock=immediate takes
	// the write lock at BEGIN, so a write transaction never fails half-way
	// on a lock upgrade when another process writes too.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + esc + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=busy_timeout(5000)&_pragma=temp_store(MEMORY)" +
		"&_pragma=wal_autocheckpoint(0)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	ctx := context.Background()
	s := &shard{k: k, db: db, ckptSig: make(chan struct{}, 1), ckptStop: make(chan struct{}), ckptDone: make(chan struct{})}
	if s.w, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, writeCacheKiB)); err != nil {
		s.close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.close()
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
		if _, err := s.w.ExecContext(ctx, set); err != nil {
			s.close()
			return nil, fmt.Errorf("open index %s: %w", path, err)
		}
	}
	s.ckptRunning = true
	go s.checkpointLoop()
	return s, nil
}

// checkpointEvery is the least time between two checkpoints: each one
// writes every page changed since the last, so a page that many blocks
// change is written once per interval rather than once per block.
const checkpointEvery = time.Second

// checkpointLoop copies the write-ahead log into the database file after
// writes, at most once per checkpointEvery, on a connection of its own.
// PASSIVE never waits for the writer or readers: what it cannot copy now
// it copies next time, and SQLite starts the log over once all of it is.
func (s *shard) checkpointLoop() {
	defer close(s.ckptDone)
	for {
		select {
		case <-s.ckptStop:
			return
		case <-s.ckptSig:
		}
		// An error here (say, a full disk) leaves the log to grow until
		// the next checkpoint succeeds; AddBlocks reports such disks.
		_, _ = s.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		select {
		case <-s.ckptStop:
			return
		case <-time.After(checkpointEvery):
		}
	}
}

// wrote asks checkpointLoop for a checkpoint.
func (s *shard) wrote() {
	select {
	case s.ckptSig <- struct{}{}:
	default:
	}
}

func (s *shard) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch v {
	case schemaVersion:
		return nil
	case 0, 1, 2, 3, 4:
	default:
		return fmt.Errorf("schema version %d, want %d: delete the index and reindex", v, schemaVersion)
	}
	tx, err := s.w.BeginTx(ctx, nil)
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
	for _, st := range schema {
		if _, err := tx.ExecContext(ctx, st); err != nil {
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

// close stops the checkpoints and closes the database.
func (s *shard) close() error {
	s.stopOnce.Do(func() {
		close(s.ckptStop)
		if s.ckptRunning {
			<-s.ckptDone
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	var werr error
	if s.w != nil {
		werr = s.w.Close()
		s.w = nil
	}
	return errors.Join(werr, s.db.Close())
}

// next returns the lowest height this shard would take next: one round of
// Shards above its highest block, or k when it holds none.
func (s *shard) next(ctx context.Context, q queryer) (uint64, error) {
	var h sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(height) FROM blocks`).Scan(&h); err != nil {
		return 0, fmt.Errorf("index height: %w", err)
	}
	if !h.Valid {
		return uint64(s.k), nil
	}
	return uint64(h.Int64) + Shards, nil
}

// add indexes this shard's blocks, every Shards-th height from the first,
// in one transaction. Blocks below the shard's next height are ones an
// AddBlocks that failed in the other shard left here; they are skipped if
// the shard holds them with the same hash.
func (s *shard) add(ctx context.Context, blocks []BlockInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return fmt.Errorf("index blocks: %w", errClosed)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index blocks: %w", err)
	}
	defer tx.Rollback()
	next, err := s.next(ctx, tx)
	if err != nil {
		return err
	}
	for len(blocks) > 0 && blocks[0].Height < next {
		if err := s.holds(ctx, tx, &blocks[0]); err != nil {
			return err
		}
		blocks = blocks[1:]
	}
	if len(blocks) == 0 {
		return nil
	}
	if h := blocks[0].Height; h != next {
		return fmt.Errorf("index block %d: %w: next height in shard %d is %d", h, ErrGap, s.k, next)
	}
	w := newWriter(tx)
	defer w.close()
	for i := range blocks {
		if err := w.block(ctx, &blocks[i]); err != nil {
			return fmt.Errorf("index block %d: %w", blocks[i].Height, err)
		}
	}
	if err := w.flush(ctx); err != nil {
		return fmt.Errorf("index blocks %d-%d: %w", blocks[0].Height, blocks[len(blocks)-1].Height, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index blocks %d-%d: %w", blocks[0].Height, blocks[len(blocks)-1].Height, err)
	}
	s.wrote()
	return nil
}

// holds checks that the shard has block b, with b's hash.
func (s *shard) holds(ctx context.Context, q queryer, b *BlockInput) error {
	var hash []byte
	err := q.QueryRowContext(ctx, `SELECT hash FROM blocks WHERE height = ?`, int64(b.Height)).Scan(&hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("index block %d: %w: shard %d skipped it", b.Height, ErrCorrupt, s.k)
	case err != nil:
		return fmt.Errorf("index block %d: %w", b.Height, err)
	case string(hash) != string(b.Hash[:]):
		return fmt.Errorf("index block %d: %w: shard %d holds another block at this height", b.Height, ErrCorrupt, s.k)
	}
	return nil
}

// reset drops every row of the shard.
func (s *shard) reset(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return errClosed
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, st := range []string{
		`DELETE FROM events`,
		`DELETE FROM blocks`,
		`INSERT INTO event_text(event_text) VALUES ('delete-all')`,
	} {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.wrote()
	return nil
}
