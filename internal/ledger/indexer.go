package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"cissan/internal/index"
)

// The index is derived from the chain in the background, by a worker per
// index shard (index.Shards files, each holding every Shards-th block).
// Append hands each stored block, decoded, to its shard's queue; the
// worker takes its whole queue in one transaction. A worker never waits
// for the other shards: in a catch-up, a shard that waited at the end of
// every batch for the slower one idled a quarter of the time.
//
// A worker works from the index, not from what it was handed: each round
// it reads its shard's height, takes the queued blocks from there, and
// reads back from the store any stored block the queue lacks (one a full
// queue turned away, or one a failed transaction left). So no block is
// lost to a full queue or a failure, and SyncIndex is the same work run
// to the chain's height.
//
// On the master (Config.IndexWhenFinal) a worker leaves a new block until
// it is final, or until a bound after its minting: the hubs validate a
// block in the moments after it is minted, finality waits for them, and
// indexing it then took CPU from them. At 17,700 events/s (half the
// machine's maximum) mint to final took 179 ms at the median and 359 ms
// at p99 with the index competing, 139 and 256 ms without.

// maxQueuedEntries bounds the decoded entries waiting for the indexer,
// each shard's queue holding a share. A block that would pass its shard's
// share is not queued (unless the queue is empty): the worker reads it
// back from the store instead, so a slow index costs time, never
// unbounded memory.
var maxQueuedEntries = 50_000 // a variable for tests

// shareEntries is what one shard's queue holds.
func shareEntries() int { return maxQueuedEntries / index.Shards }

// syncBatchEntries is about the most entries a worker reads back from the
// store for one transaction: two blocks of 10,000. With every shard doing
// so at once, about Shards times this many entries are in memory.
var syncBatchEntries = 20_000 // a variable for tests

// queueIndex hands a stored block to its shard's worker.
func (l *Ledger) queueIndex(b index.BlockInput) {
	k := int(b.Height % index.Shards)
	l.qMu.Lock()
	if l.queued[k]+len(b.Entries) <= shareEntries() || len(l.queue[k]) == 0 {
		l.queue[k] = append(l.queue[k], b)
		l.queued[k] += len(b.Entries)
	}
	l.qMu.Unlock()
	l.signal(k)
}

// signal wakes shard k's worker.
func (l *Ledger) signal(k int) {
	select {
	case l.idxSig[k] <- struct{}{}:
	default:
	}
}

// indexLoop is shard k's worker. When Close asks it to stop, it first
// indexes every stored block of its shard, so that a cleanly closed
// node's index is level with its chain (`cissan verify data` checks that).
func (l *Ledger) indexLoop(ctx context.Context, k int) {
	defer l.idxDone.Done()
	const retry = time.Second
	for {
		var stopping bool
		select {
		case <-l.idxSig[k]:
		case <-l.idxStop:
			stopping = true
		}
		err := l.indexShard(ctx, k)
		switch {
		case stopping:
			if err != nil {
				l.log.Error("index blocks at close", "shard", k, "err", err)
			}
			return
		case err != nil:
			l.log.Error("index blocks; will retry", "shard", k, "err", err, "retry_in", retry)
			select {
			case <-time.After(retry):
			case <-l.idxStop:
			}
			l.signal(k)
		}
	}
}

// indexShard indexes shard k's stored blocks above the shard's height, up
// to the chain's height, and then reads the index's height.
func (l *Ledger) indexShard(ctx context.Context, k int) error {
	for {
		next, err := l.idx.ShardHeight(ctx, k)
		if err != nil {
			return err
		}
		l.awaitFinal(next)
		blocks, err := l.shardBlocks(k, next)
		if err != nil {
			return err
		}
		if len(blocks) == 0 {
			return l.readIndexed(ctx)
		}
		if err := l.idx.AddShard(ctx, k, blocks); err != nil {
			return err
		}
		if err := l.readIndexed(ctx); err != nil {
			return err
		}
	}
}

// shardBlocks returns shard k's next blocks from its height next: the
// queued ones, if the queue has next; otherwise the stored ones below the
// first queued, read back and decoded (about syncBatchEntries entries);
// none if the chain has no block from next on. It drops queued blocks
// below next, which the shard holds already.
func (l *Ledger) shardBlocks(k int, next uint64) ([]index.BlockInput, error) {
	l.qMu.Lock()
	q := l.queue[k]
	skip := 0 // blocks indexed already
	for skip < len(q) && q[skip].Height < next {
		skip++
	}
	take := skip // then the queued blocks from next, without a gap
	for take < len(q) && q[take].Height == next+uint64(take-skip)*index.Shards {
		take++
	}
	taken := q[skip:take]
	for _, b := range q[:take] {
		l.queued[k] -= len(b.Entries)
	}
	l.queue[k] = q[take:]
	if take > 0 {
		close(l.idxTaken)
		l.idxTaken = make(chan struct{})
	}
	until := l.Height()
	if len(l.queue[k]) > 0 {
		until = l.queue[k][0].Height
	}
	l.qMu.Unlock()
	if len(taken) > 0 {
		return taken, nil
	}
	var out []index.BlockInput
	for h, n := next, 0; h < until && n < syncBatchEntries; h += index.Shards {
		blk, entries, err := l.load(h)
		if err != nil {
			return nil, err
		}
		out = append(out, index.BlockInput{Height: h, Hash: blk.Header.Hash(), MintTimeMs: blk.Header.MintTimeMs, Entries: entries, Raw: blk.Entries})
		n += len(entries) + 1
	}
	return out, nil
}

// awaitFinal waits, on a ledger that indexes blocks once they are final,
// until stored block h is final or indexWhenFinal has passed since it was
// minted. It returns at once if h is not stored, and when Close begins.
func (l *Ledger) awaitFinal(h uint64) {
	if l.indexWhenFinal <= 0 {
		return
	}
	for h < l.Height() {
		l.qMu.Lock()
		wake := l.finalWake
		l.qMu.Unlock()
		if ok, err := l.Final(h); ok || err != nil {
			return
		}
		hdr, _, err := l.st.Header(h)
		if err != nil {
			return // shardBlocks meets it too, and reports it
		}
		wait := time.Until(time.UnixMilli(hdr.MintTimeMs).Add(l.indexWhenFinal))
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-wake:
		case <-t.C:
		case <-l.idxStop:
		}
		t.Stop()
		select {
		case <-l.idxStop:
			return
		default:
		}
	}
}

// readIndexed sets IndexedHeight from the index: the lowest height a
// shard lacks.
func (l *Ledger) readIndexed(ctx context.Context) error {
	l.heightMu.Lock()
	defer l.heightMu.Unlock()
	h, err := l.idx.Height(ctx)
	if err != nil {
		return err
	}
	l.qMu.Lock()
	defer l.qMu.Unlock()
	if h != l.indexed.Load() {
		l.indexed.Store(h)
		close(l.idxWake)
		l.idxWake = make(chan struct{})
	}
	return nil
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

// WaitIndexQueue waits while the queue of the shard the next block goes to
// holds over half of its share. A hub catching up appends blocks faster
// than it indexes them; waiting here hands the workers entries already
// decoded, where a full queue would make them read blocks back from the
// store and decode them again, on the cores that limit a catch-up.
func (l *Ledger) WaitIndexQueue(ctx context.Context) error {
	for {
		k := l.Height() % index.Shards
		l.qMu.Lock()
		n, taken := l.queued[k], l.idxTaken
		l.qMu.Unlock()
		if n <= shareEntries()/2 {
			return nil
		}
		select {
		case <-taken:
		case <-ctx.Done():
			return fmt.Errorf("wait for the indexer: %w", ctx.Err())
		}
	}
}

// SyncIndex indexes every stored block above the index's height, the
// shards at once. It returns once the index is level with the chain, so
// it is for a ledger that no blocks are being appended to (at open, or
// after index.Reset).
func (l *Ledger) SyncIndex(ctx context.Context) error {
	var errs [index.Shards]error
	var wg sync.WaitGroup
	for k := range index.Shards {
		wg.Go(func() { errs[k] = l.indexShard(ctx, k) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return fmt.Errorf("sync index: %w", err)
	}
	return nil
}
