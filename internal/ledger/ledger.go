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
// counts as final (Final, FinalHeight) only once this node has indexed it,
// so whoever is told an event is final can also find it by search. Close
// indexes every stored block before it returns.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
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

	// The background indexer (see indexLoop). idxMu serializes writes to
	// the index; indexed is the index height once Open returns.
	idxMu   sync.Mutex
	indexed atomic.Uint64
	qMu     sync.Mutex // guards idxq, idxqN, idxDropped, idxWake and idxTaken
	idxq    []index.BlockInput
	idxqN   int // entries in idxq
	// idxDropped: a stored block found the queue full; the indexer reads
	// it back from the store.
	idxDropped bool
	idxWake    chan struct{} // closed and replaced whenever indexed grows
	idxTaken   chan struct{} // closed and replaced whenever the indexer takes the queue
	idxSig     chan struct{}
	idxStop    chan struct{}
	idxDone    chan struct{}
	idxClose   context.CancelFunc

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
}

// Paths of a ledger's files inside its directory.
func StorePath(dir string) string { return filepath.Join(dir, "chain") }
func IndexPath(dir string) string { return filepath.Join(dir, "index.db") }

// Open opens (or creates) the ledger in c.Dir, rebuilds the head state from
// the store, replays analyzer state and brings the index level.
func Open(ctx context.Context, c Config) (*Ledger, error) {
	st, err := store.Open(StorePath(c.Dir), store.Options{})
	if err != nil {
		return nil, err
	}
	idx, err := index.Open(IndexPath(c.Dir))
	if err != nil {
		st.Close()
		return nil, err
	}
	l := &Ledger{net: c.Network, limits: c.Limits, st: st, idx: idx, log: c.Log, hist: chain.NewHistory(),
		idxWake: make(chan struct{}), idxTaken: make(chan struct{}), idxSig: make(chan struct{}, 1), idxStop: make(chan struct{}), idxDone: make(chan struct{})}
	if err := l.recover(ctx); err != nil {
		close(l.idxDone)
		l.Close()
		return nil, err
	}
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.idxClose = cancel
	go l.indexLoop(ictx)
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
		<-l.idxDone
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
	uids := make([]string, len(entries))
	for i, en := range entries {
		uids[i] = en.Event.UID
	}
	b := l.st.NewBlockBatch(blk)
	defer b.Close()
	if err := b.PutBlock(blk, uids); err != nil {
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

// maxQueuedEntries bounds the decoded entries waiting for the indexer. A
// block that would pass it is not queued: the indexer reads it back from
// the store instead, so a slow index costs time, never unbounded memory.
var maxQueuedEntries = 50_000 // a variable for tests

// queueIndex hands a stored block to the indexer.
func (l *Ledger) queueIndex(b index.BlockInput) {
	l.qMu.Lock()
	if l.idxqN+len(b.Entries) <= maxQueuedEntries || len(l.idxq) == 0 {
		l.idxq = append(l.idxq, b)
		l.idxqN += len(b.Entries)
	} else {
		l.idxDropped = true
	}
	l.qMu.Unlock()
	select {
	case l.idxSig <- struct{}{}:
	default:
	}
}

// indexLoop indexes stored blocks as Append queues them, all that wait in
// one transaction. When Close asks it to stop, it first indexes every
// stored block, so that a cleanly closed node's index is level with its
// chain (`cissan verify data` checks that).
func (l *Ledger) indexLoop(ctx context.Context) {
	defer close(l.idxDone)
	retry := time.Second
	for {
		var stopping bool
		select {
		case <-l.idxSig:
		case <-l.idxStop:
			stopping = true
		}
		if err := l.indexQueued(ctx); err != nil {
			l.log.Error("index blocks; will retry", "err", err, "retry_in", retry)
			if stopping {
				return
			}
			select {
			case <-time.After(retry):
			case <-l.idxStop:
			}
			select {
			case l.idxSig <- struct{}{}:
			default:
			}
			continue
		}
		if stopping {
			return
		}
	}
}

// indexQueued indexes the queued blocks, reading from the store any
// stored block the queue lacks.
func (l *Ledger) indexQueued(ctx context.Context) error {
	l.idxMu.Lock()
	defer l.idxMu.Unlock()
	l.qMu.Lock()
	q, dropped := l.idxq, l.idxDropped
	l.idxq, l.idxqN, l.idxDropped = nil, 0, false
	close(l.idxTaken)
	l.idxTaken = make(chan struct{})
	l.qMu.Unlock()
	next := l.indexed.Load()
	for len(q) > 0 && q[0].Height < next {
		q = q[1:]
	}
	if len(q) == 0 || q[0].Height != next {
		// Blocks the queue dropped, or an earlier failure: read them back.
		return l.syncIndexLocked(ctx)
	}
	for i := range q {
		if q[i].Height != next+uint64(i) {
			return l.syncIndexLocked(ctx)
		}
	}
	q, later := evenBatch(q)
	if len(later) > 0 {
		l.requeue(later)
	}
	if err := l.idx.AddBlocks(ctx, q); err != nil {
		if h, herr := l.idx.Height(ctx); herr == nil {
			l.setIndexed(h)
		}
		return err
	}
	l.setIndexed(q[len(q)-1].Height + 1)
	if dropped {
		// The blocks the queue had no room for came after these; no
		// further Append may come to signal for them.
		return l.syncIndexLocked(ctx)
	}
	return nil
}

// evenBatch splits the queued blocks q into a batch for the index now and
// the blocks for the next batch. Each of the index's files takes its
// share of a batch at once: given three blocks, one file would wait while
// the other takes its second. A batch is therefore a multiple of
// index.Shards blocks, unless it is fewer (a catch-up ran 14-20% faster
// so).
func evenBatch(q []index.BlockInput) (now, later []index.BlockInput) {
	keep := len(q) % index.Shards
	if keep == 0 || len(q) < index.Shards {
		return q, nil
	}
	return q[:len(q)-keep], q[len(q)-keep:]
}

// requeue puts blocks taken from the queue back at its head, and wakes
// the indexer for them.
func (l *Ledger) requeue(blocks []index.BlockInput) {
	l.qMu.Lock()
	l.idxq = append(slices.Clone(blocks), l.idxq...)
	for _, b := range blocks {
		l.idxqN += len(b.Entries)
	}
	l.qMu.Unlock()
	select {
	case l.idxSig <- struct{}{}:
	default:
	}
}

func (l *Ledger) setIndexed(h uint64) {
	l.qMu.Lock()
	defer l.qMu.Unlock()
	if h != l.indexed.Load() {
		l.indexed.Store(h)
		close(l.idxWake)
		l.idxWake = make(chan struct{})
	}
}

// IndexedHeight returns the number of blocks this node has indexed.
func (l *Ledger) IndexedHeight() uint64 { return l.indexed.Load() }

// WaitIndexed waits until this node has indexed blocks below h.
func (l *Ledger) WaitIndexed(ctx context.Context, h uint64) error {
	for {
		l.qMu.Lock()
		wake := l.idxWake
		l.qMu.Unlock()
		if l.indexed.Load() >= h {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("wait for index height %d: %w", h, ctx.Err())
		}
	}
}

// WaitIndexQueue waits while the blocks queued for the indexer hold half
// of what the queue takes. A hub catching up appends blocks faster than
// it indexes them; waiting here hands the indexer entries already
// decoded, where a full queue would make it read them back from the store
// and decode them again, on the core that limits a catch-up.
func (l *Ledger) WaitIndexQueue(ctx context.Context) error {
	for {
		l.qMu.Lock()
		n, taken := l.idxqN, l.idxTaken
		l.qMu.Unlock()
		if n <= maxQueuedEntries/2 {
			return nil
		}
		select {
		case <-taken:
		case <-ctx.Done():
			return fmt.Errorf("wait for the indexer: %w", ctx.Err())
		}
	}
}

// SyncIndex indexes every stored block above the index's height.
func (l *Ledger) SyncIndex(ctx context.Context) error {
	l.idxMu.Lock()
	defer l.idxMu.Unlock()
	return l.syncIndexLocked(ctx)
}

func (l *Ledger) syncIndexLocked(ctx context.Context) error {
	ih, err := l.idx.Height(ctx)
	if err != nil {
		return err
	}
	l.setIndexed(ih)
	top := l.Height()
	if ih >= top {
		return nil
	}
	// The next batch is read and decoded while the index takes this one.
	batches := make(chan syncBatch)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(batches)
		for h := ih; h < top; {
			b := l.loadBatch(h, top)
			select {
			case batches <- b:
			case <-stop:
				return
			}
			if b.err != nil {
				return
			}
			h = b.next
		}
	}()
	for b := range batches {
		if b.err != nil {
			return fmt.Errorf("sync index: %w", b.err)
		}
		if err := l.idx.AddBlocks(ctx, b.blocks); err != nil {
			return fmt.Errorf("sync index: %w", err)
		}
		l.setIndexed(b.next)
	}
	return nil
}

// syncBatchEntries is about the most entries syncIndexLocked gives the
// index at once: two blocks of 10,000, so that both of the index's files
// take one. With the next batch decoded meanwhile, about twice this many
// entries are in memory (more when a single block holds more).
var syncBatchEntries = 20_000 // a variable for tests

// syncBatch is stored blocks from one height to next, decoded for the
// index.
type syncBatch struct {
	blocks []index.BlockInput
	next   uint64
	err    error
}

// loadBatch reads and decodes the stored blocks from height h up to top,
// or up to about syncBatchEntries entries.
func (l *Ledger) loadBatch(h, top uint64) syncBatch {
	var b syncBatch
	for n := 0; h < top && n < syncBatchEntries; h++ {
		blk, entries, err := l.load(h)
		if err != nil {
			b.err = err
			return b
		}
		b.blocks = append(b.blocks, index.BlockInput{Height: h, Hash: blk.Header.Hash(), MintTimeMs: blk.Header.MintTimeMs, Entries: entries, Raw: blk.Entries})
		n += len(entries) + 1
	}
	b.next = h
	return b
}

// Block returns stored block h.
func (l *Ledger) Block(h uint64) (*chain.Block, error) { return l.st.Block(h) }

// ContentAt returns the content hash (event.ContentHash) of the event
// logged at loc, read from its entry: it tells a retransmit of a logged
// event from another event that reuses its uid.
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
	return b.Commit()
}
