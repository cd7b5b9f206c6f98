// Package ledger is a node's copy of the chain: the Pebble block store, the
// SQLite index derived from it, the history tree over block hashes, and the
// analyzers' state. Master and hubs append blocks through it, so every node
// stores, indexes and advances analyzer state the same way.
//
// The store is the source of truth. The index may lag it after a crash; the
// ledger brings it level at open. After that a background indexer keeps it
// level: Append hands each stored block to it and returns, so that neither
// the master's next block nor a hub's countersignature waits for SQLite,
// and under load several blocks go into one index transaction. A block
// counts as final (Final, FinalHeight) once a quorum of hubs has accepted
// it, index or not: an event in a final block is found by uid at once, and
// by search once IndexedHeight passes its block. Close indexes every
// stored block before it returns.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/index"
	"cissan/internal/store"
)

// Ledger is one node's chain.
type Ledger struct {
	net    *chain.Network
	limits event.Limits
	st     *store.Store
	idx    *index.Index
	log    *slog.Logger

	an      analyze.Set // built from the last analyzer config on the chain
	configs []ConfigChange

	tagged    atomic.Int64 // events in the chain with at least one tag
	events    atomic.Int64 // events in the chain
	finalMark uint64       // FinalHeight's last answer; guarded by mu

	closeOnce sync.Once
	closeErr  error

	// The background indexer, a worker per index shard (indexer.go).
	// indexed is the index's height as last read (readIndexed, which
	// heightMu serializes).
	indexed  atomic.Uint64
	heightMu sync.Mutex
	qMu      sync.Mutex                       // guards queue, queued, idxWake and idxTaken
	queue    [index.Shards][]index.BlockInput // decoded blocks for each shard, ascending
	queued   [index.Shards]int                // entries in queue
	idxWake  chan struct{}                    // closed and replaced whenever indexed grows
	idxTaken chan struct{}                    // closed and replaced whenever a worker takes from its queue
	idxSig   [index.Shards]chan struct{}
	idxStop  chan struct{}
	idxDone  sync.WaitGroup
	idxClose context.CancelFunc
	// indexWhenFinal is Config.IndexWhenFinal; finalWake is closed and
	// replaced (under qMu) whenever a validation is recorded.
	indexWhenFinal time.Duration
	finalWake      chan struct{}

	mu     sync.RWMutex // guards the head below
	height uint64
	prev   chain.Hash
	hist   *chain.History
}

// Config says where a ledger lives and what it checks against.
type Config struct {
	Dir     string // holds chain/ (Pebble) and index.db (SQLite)
	Network *chain.Network
	Limits  event.Limits
	Log     *slog.Logger
	// IndexWhenFinal, if positive, has the background indexer leave a new
	// block until it is final or this long after it was minted, whichever
	// comes first. The master sets it: indexing a block while the hubs
	// validate it took the CPU their validation needed, and finality
	// waits for that validation (see indexer.go).
	IndexWhenFinal time.Duration
}

// Paths of a ledger's files inside its directory.
func StorePath(dir string) string { return filepath.Join(dir, "chain") }
func IndexPath(dir string) string { return filepath.Join(dir, "index.db") }

// Open opens (or creates) the ledger in c.Dir, rebuilds the head state from
// the store, replays analyzer state and brings the index level.
func Open(ctx context.Context, c Config) (*Ledger, error) {
	st, err := store.Open(StorePath(c.Dir), store.Options{Log: c.Log})
	if err != nil {
		return nil, err
	}
	idx, err := index.Open(IndexPath(c.Dir))
	if err != nil {
		st.Close()
		return nil, err
	}
	l := &Ledger{net: c.Network, limits: c.Limits, st: st, idx: idx, log: c.Log, hist: chain.NewHistory(),
		idxWake: make(chan struct{}), idxTaken: make(chan struct{}), idxStop: make(chan struct{}),
		indexWhenFinal: c.IndexWhenFinal, finalWake: make(chan struct{})}
	for k := range l.idxSig {
		l.idxSig[k] = make(chan struct{}, 1)
	}
	if err := l.recover(ctx); err != nil {
		l.Close()
		return nil, err
	}
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.idxClose = cancel
	for k := range index.Shards {
		l.idxDone.Add(1)
		go l.indexLoop(ictx, k)
	}
	return l, nil
}

func (l *Ledger) recover(ctx context.Context) error {
	h, err := l.st.Height()
	if err != nil {
		return err
	}
	hashes, err := l.st.BlockHashes(h)
	if err != nil {
		return fmt.Errorf("recover history: %w", err)
	}
	for _, bh := range hashes {
		l.hist.Append(bh)
	}
	l.height = h
	if h > 0 {
		l.prev = hashes[h-1]
	}
	if err := l.recoverControls(h); err != nil {
		return fmt.Errorf("recover control records: %w", err)
	}
	if err := l.dropLoggedPool(); err != nil {
		return fmt.Errorf("recover pool: %w", err)
	}
	if err := l.SyncIndex(ctx); err != nil {
		return err
	}
	n, err := l.idx.CountTagged(ctx)
	if err != nil {
		return err
	}
	l.tagged.Store(n)
	// The index is level with the chain here, so its count is the
	// chain's; Append keeps it from then on, for GET /v1/status.
	if n, err = l.idx.Count(ctx); err != nil {
		return err
	}
	l.events.Store(n)
	return nil
}

// Tagged returns the number of events in the chain that carry a tag.
func (l *Ledger) Tagged() int64 { return l.tagged.Load() }

// Events returns how many events the chain holds.
func (l *Ledger) Events() int64 { return l.events.Load() }

// Close indexes every stored block not yet indexed, then closes the store
// and index. Closing twice is harmless.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		close(l.idxStop)
		l.idxDone.Wait()
		if l.idxClose != nil {
			l.idxClose()
		}
		l.closeErr = errors.Join(l.idx.Close(), l.st.Close())
	})
	return l.closeErr
}

// Store returns the block store.
func (l *Ledger) Store() *store.Store { return l.st }

// Index returns the SQLite index.
func (l *Ledger) Index() *index.Index { return l.idx }

// Analyzers returns the analyzer set in force, with its state after the
// last appended block. Only the goroutine that appends blocks may use it;
// a block that carries a new configuration is tagged by AnalyzersFor.
func (l *Ledger) Analyzers() analyze.Set { return l.an }

// Network returns the network the ledger checks blocks against: the one
// it was opened with, plus the hubs the chain has enrolled since.
//
// It is a snapshot: enrolling a hub replaces the ledger's network with a
// new one rather than changing the old, so a caller may keep it.
func (l *Ledger) Network() *chain.Network {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.net
}

// Limits returns the event limits in force.
func (l *Ledger) Limits() event.Limits { return l.limits }

// Height returns the number of blocks stored.
func (l *Ledger) Height() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.height
}

// Expect returns what the next block must satisfy.
func (l *Ledger) Expect() chain.Expect {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return chain.Expect{
		Network:     l.net.ID,
		Height:      l.height,
		Prev:        l.prev,
		HistoryRoot: l.hist.Root(),
		MasterKey:   l.net.MasterKey,
		Hubs:        l.net.Hubs,
		Limits:      l.limits,
	}
}

func (l *Ledger) load(h uint64) (*chain.Block, []*event.Entry, error) {
	blk, err := l.st.Block(h)
	if err != nil {
		return nil, nil, err
	}
	entries := make([]*event.Entry, len(blk.Entries))
	for i, raw := range blk.Entries {
		if entries[i], err = event.DecodeEntry(raw, l.limits); err != nil {
			return nil, nil, fmt.Errorf("block %d entry %d: %w", h, i, err)
		}
	}
	return blk, entries, nil
}

// Append stores a checked block with its decoded entries, together with
// whatever extra writes the caller adds (pool deletions), in one synced
// batch; then advances analyzer state and hands the block to the
// background indexer. The caller must have checked the block against
// Expect.
func (l *Ledger) Append(ctx context.Context, blk *chain.Block, entries []*event.Entry, extra func(*store.Batch) error) error {
	ids := make([]string, len(entries))
	for i, en := range entries {
		ids[i] = en.Event.ID()
	}
	b := l.st.NewBlockBatch(blk)
	defer b.Close()
	if err := b.PutBlock(blk, ids); err != nil {
		return fmt.Errorf("append block %d: %w", blk.Header.Height, err)
	}
	if extra != nil {
		if err := extra(b); err != nil {
			return fmt.Errorf("append block %d: %w", blk.Header.Height, err)
		}
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("append block %d: %w", blk.Header.Height, err)
	}
	hash := blk.Header.Hash()
	l.mu.Lock()
	l.height = blk.Header.Height + 1
	l.prev = hash
	l.hist.Append(hash)
	l.mu.Unlock()
	if err := l.useControls(blk.Header.Height, blk.Controls); err != nil {
		// Checked before the block was accepted; failing here means the
		// code that checked and the code that applies disagree.
		return fmt.Errorf("append block %d: %w", blk.Header.Height, err)
	}
	l.an.Apply(analyze.Block{Height: blk.Header.Height, Hash: hash, Entries: entries})
	l.events.Add(int64(len(entries)))
	for _, en := range entries {
		if len(en.Tags) > 0 {
			l.tagged.Add(1)
		}
	}
	l.queueIndex(index.BlockInput{Height: blk.Header.Height, Hash: hash, MintTimeMs: blk.Header.MintTimeMs, Entries: entries, Raw: blk.Entries})
	return nil
}

// Block returns stored block h.
func (l *Ledger) Block(h uint64) (*chain.Block, error) { return l.st.Block(h) }

// Held is what the chain holds of one event ID: whether it holds the
// version asked about (Same, at At), and where it holds other versions.
type Held struct {
	Same   bool
	At     store.Located
	Others []store.Located
}

// Holds looks up many events at once: for each ids[i] (event.ID), whose
// content hash (event.ContentHash) is content(i), it calls fn with what the
// chain holds. Almost every event asked about is new and costs a bloom
// filter probe; content is called only for one that is found, which also
// costs a read of each logged version's entry.
func (l *Ledger) Holds(ids []string, content func(i int) chain.Hash, fn func(i int, h Held) error) error {
	return l.st.LocateAll(ids, func(i int, locs []store.Located) error {
		var h Held
		var want chain.Hash
		if len(locs) > 0 {
			want = content(i)
		}
		for _, loc := range locs {
			c, err := l.ContentAt(loc)
			if err != nil {
				return err
			}
			if c == want && !h.Same {
				h.Same, h.At = true, loc
			} else {
				h.Others = append(h.Others, loc)
			}
		}
		return fn(i, h)
	})
}

// dropLoggedPool deletes the pool records of events the chain holds: what
// a crash between storing a block and deleting its pool records leaves. A
// node pools a version of an event only while the chain does not hold it.
func (l *Ledger) dropLoggedPool() error {
	var keys, ids []string
	var contents []chain.Hash
	err := l.st.EachPool(func(k string, _ []byte) error {
		id, content, ok := event.SplitVersionKey(k)
		if !ok {
			return fmt.Errorf("pool record under malformed key %q", k)
		}
		keys, ids, contents = append(keys, k), append(ids, id), append(contents, content)
		return nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	seqs := map[string]uint64{}
	if err := l.st.EachSeq(func(seq uint64, k string) error {
		seqs[k] = seq
		return nil
	}); err != nil {
		return err
	}
	var logged []string
	var loggedSeqs []uint64
	err = l.Holds(ids, func(i int) chain.Hash { return contents[i] }, func(i int, h Held) error {
		if h.Same {
			logged, loggedSeqs = append(logged, keys[i]), append(loggedSeqs, seqs[keys[i]])
		}
		return nil
	})
	if err != nil || len(logged) == 0 {
		return err
	}
	b := l.st.NewBatch()
	defer b.Close()
	if err := b.DeletePools(logged, loggedSeqs); err != nil {
		return err
	}
	return b.Commit()
}

// ContentAt returns the content hash (event.ContentHash) of the event
// logged at loc, read from its entry: it tells a retransmit of a logged
// event from another version of it.
func (l *Ledger) ContentAt(loc store.Located) (chain.Hash, error) {
	raw, err := l.st.Entry(loc.Height, loc.Index)
	if err != nil {
		return chain.Hash{}, fmt.Errorf("read block %d entry %d: %w", loc.Height, loc.Index, err)
	}
	en, err := event.DecodeEntry(raw, l.limits)
	if err != nil {
		return chain.Hash{}, fmt.Errorf("block %d entry %d: %w", loc.Height, loc.Index, err)
	}
	return event.ContentHash(&en.Event), nil
}

// blocksBytes is about the most entry bytes Blocks returns at once.
var blocksBytes = 8 << 20 // a variable for tests

// Blocks returns up to max stored blocks from height from on, and stops
// early after the block that brings their entries to blocksBytes: a hub
// catching up asks again from where they end. Blocks of 10,000 events are
// megabytes each. Sixty-four of them were read and held for one fetch,
// which the RabbitMQ bus then cut to what fits its 8 MiB reply, and the
// fetch stalled a hub's indexer behind it for most of a second.
func (l *Ledger) Blocks(from uint64, max int) ([]*chain.Block, error) {
	top := l.Height()
	var out []*chain.Block
	size := 0
	for h := from; h < top && len(out) < max && size < blocksBytes; h++ {
		b, err := l.st.Block(h)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
		for _, e := range b.Entries {
			size += len(e)
		}
	}
	return out, nil
}

// Accepting returns the ids of hubs whose stored validations of block h
// accept it, and all validations stored for it.
func (l *Ledger) Accepting(h uint64) ([]string, []chain.Validation, error) {
	vals, err := l.st.Validations(h)
	if err != nil {
		return nil, nil, err
	}
	var ok []string
	for _, v := range vals {
		if v.Verdict == chain.Accept {
			ok = append(ok, v.HubID)
		}
	}
	return ok, vals, nil
}

// Final reports whether block h has the quorum of accepting validations.
//
// Finality does not wait for this node's index: the index is derived
// data, built in the background, and a block of ten thousand events took
// it longer than the hubs took to validate the block, which put the index
// on the path of every event's latency. An event in a final block is
// found by uid at once (the store answers that); search follows when the
// index reaches the block, IndexedHeight says when.
func (l *Ledger) Final(h uint64) (bool, error) {
	if h >= l.Height() {
		return false, nil
	}
	ok, _, err := l.Accepting(h)
	return len(ok) >= l.Network().Quorum, err
}

// FinalHeight returns one more than the newest final block (0 if none).
// It searches down from the head to the mark of its last answer, since
// finality only moves up.
func (l *Ledger) FinalHeight() uint64 {
	l.mu.RLock()
	mark := l.finalMark
	l.mu.RUnlock()
	for lo := l.Height(); lo > mark; lo-- {
		if ok, _ := l.Final(lo - 1); ok {
			mark = lo
			break
		}
	}
	l.mu.Lock()
	l.finalMark = max(l.finalMark, mark)
	mark = l.finalMark
	l.mu.Unlock()
	return mark
}

// RecordValidation checks a validation against the network and the stored
// block and stores it. Repeats are harmless.
func (l *Ledger) RecordValidation(v *chain.Validation) error {
	net := l.Network()
	hub := net.Hub(v.HubID)
	if hub == nil {
		return fmt.Errorf("%w: validation from unknown hub %q", chain.ErrInvalid, v.HubID)
	}
	if v.Height < hub.FromHeight {
		return fmt.Errorf("%w: hub %q validates only from height %d", chain.ErrInvalid, v.HubID, hub.FromHeight)
	}
	if err := v.Verify(net.ID, hub.PublicKey); err != nil {
		return err
	}
	hdr, _, err := l.st.Header(v.Height)
	if err != nil {
		return fmt.Errorf("validation by %s: %w", v.HubID, err)
	}
	if hdr.Hash() != v.BlockHash {
		return fmt.Errorf("%w: validation by %s names block hash %x, block %d is %x", chain.ErrInvalid, v.HubID, v.BlockHash, v.Height, hdr.Hash())
	}
	b := l.st.NewBatch()
	defer b.Close()
	if err := b.PutValidation(v); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return err
	}
	l.qMu.Lock()
	close(l.finalWake)
	l.finalWake = make(chan struct{})
	l.qMu.Unlock()
	return nil
}
