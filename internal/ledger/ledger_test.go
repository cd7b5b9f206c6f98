package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/index"
)

func key(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = b
	return ed25519.NewKeyFromSeed(seed)
}

func pub(b byte) ed25519.PublicKey { return key(b).Public().(ed25519.PublicKey) }

// oneHubNetwork is a network of the master (key 1) and hub-1 (key 2).
func oneHubNetwork() *chain.Network {
	return &chain.Network{ID: chain.NetworkID{1}, MasterKey: pub(1), Quorum: 1, Hubs: []chain.HubInfo{{ID: "hub-1", PublicKey: pub(2)}}}
}

func open(t *testing.T, dir string, net *chain.Network) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), Config{Dir: dir, Network: net, Limits: event.DefaultLimits(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestControlsTakeEffectAndSurviveARestart: a block's analyzer
// configuration decides its own tags, its hub enrolment counts from the
// next block, and both come back from the chain when the ledger reopens.
func TestControlsTakeEffectAndSurviveARestart(t *testing.T) {
	net := oneHubNetwork()
	dir := t.TempDir()
	l := open(t, dir, net)
	cfg := analyze.Config{Range: []analyze.RangeRule{{Key: "t", Min: 0, Max: 10}}}
	controls := [][]byte{
		chain.Control{Kind: chain.ControlAnalyzers, Body: cfg.Encode()}.Encode(),
		chain.Enrolment{ID: "hub-2", PublicKey: hex.EncodeToString(pub(3))}.Encode(),
	}
	an, got, err := l.AnalyzersFor(controls)
	if err != nil || got == nil {
		t.Fatalf("AnalyzersFor = %v, %v", got, err)
	}
	en := &event.Entry{HubID: "hub-1", ReceivedMs: 1, Event: event.Event{UID: "e1", Timestamp: 1, Namespace: "a/b", DeviceUID: "d",
		Items: []event.Item{{Key: "t", Value: event.Value{Kind: event.KindNumber, Num: 50}}}}}
	en.Tags = an.Tags(&en.Event)
	if len(en.Tags) != 1 {
		t.Fatalf("the block's own configuration did not tag its entry: %v", en.Tags)
	}
	x := l.Expect()
	blk := chain.Seal(chain.Header{Network: x.Network, HistoryRoot: x.HistoryRoot}, [][]byte{en.Encode()}, controls, key(1))
	if _, err := blk.Check(x); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), blk, []*event.Entry{en}, nil); err != nil {
		t.Fatal(err)
	}
	check := func(l *Ledger, when string) {
		t.Helper()
		h := l.Network().Hub("hub-2")
		if h == nil || h.FromHeight != 1 || !h.PublicKey.Equal(pub(3)) {
			t.Fatalf("%s: hub-2 = %+v, want it from height 1", when, h)
		}
		if c := l.Configs(); len(c) != 1 || c[0].Height != 0 {
			t.Fatalf("%s: configs %+v, want one at height 0", when, c)
		}
		if l.Tagged() != 1 || l.Events() != 1 {
			t.Fatalf("%s: %d tagged events of %d, want 1 of 1", when, l.Tagged(), l.Events())
		}
		if net.Hub("hub-2") != nil {
			t.Fatalf("%s: the network the ledger was opened with was changed in place", when)
		}
	}
	check(l, "after the block")
	l.Close()
	check(open(t, dir, net), "after reopening")
}

func TestNextNetworkRefusesConflicts(t *testing.T) {
	net := oneHubNetwork()
	for name, c := range map[string]struct {
		e    chain.Enrolment
		want string
	}{
		"id with another key": {chain.Enrolment{ID: "hub-1", PublicKey: hex.EncodeToString(pub(5))}, "another key"},
		"key of another hub":  {chain.Enrolment{ID: "hub-2", PublicKey: hex.EncodeToString(pub(2))}, "already enrolled for hub-1"},
		"the master's key":    {chain.Enrolment{ID: "hub-2", PublicKey: hex.EncodeToString(pub(1))}, "master's key"},
		"reserved id":         {chain.Enrolment{ID: "master", PublicKey: hex.EncodeToString(pub(5))}, "reserved"},
		"malformed key":       {chain.Enrolment{ID: "hub-2", PublicKey: "zz"}, "public_key"},
	} {
		if _, err := NextNetwork(net, 3, [][]byte{c.e.Encode()}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: NextNetwork = %v, want an error with %q", name, err, c.want)
		}
	}
	same, err := NextNetwork(net, 3, [][]byte{chain.Enrolment{ID: "hub-1", PublicKey: hex.EncodeToString(pub(2))}.Encode()})
	if err != nil || len(same.Hubs) != 1 {
		t.Fatalf("re-enrolling a hub with its own key = %+v, %v; want no change", same, err)
	}
}

// TestIndexReachesBlocksTheQueueDropped: blocks stored while the indexer's
// queue is full are indexed from the store, though no later block comes to
// wake the indexer. A large first block keeps the indexer busy while the
// next one fills the queue and the rest find it full; the indexer then
// takes that queue last.
func TestIndexReachesBlocksTheQueueDropped(t *testing.T) {
	n := maxQueuedEntries
	t.Cleanup(func() { maxQueuedEntries = n }) // after the ledger closes
	maxQueuedEntries = 1
	net := oneHubNetwork()
	l := open(t, t.TempDir(), net)
	ctx := context.Background()
	appendBlock(t, l, 5000)
	for range 5 {
		appendBlock(t, l, 1)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.WaitIndexed(wctx, l.Height()); err != nil {
		t.Fatalf("index at %d of %d blocks: %v", l.IndexedHeight(), l.Height(), err)
	}
}

// A shard's worker takes the queued blocks from its shard's height up to
// the first gap, and reads the blocks in a gap back from the store: here
// the queue of shard 0 lacks block 2 (as when a full queue turned it
// away), and no Append comes to wake the workers again.
func TestIndexFillsGapsInTheQueueFromTheStore(t *testing.T) {
	l := open(t, t.TempDir(), oneHubNetwork())
	var q []index.BlockInput
	for range 6 {
		blk := appendBlock(t, l, 2)
		_, entries, err := l.load(blk.Header.Height)
		if err != nil {
			t.Fatal(err)
		}
		q = append(q, index.BlockInput{Height: blk.Header.Height, Hash: blk.Header.Hash(), Entries: entries, Raw: blk.Entries})
	}
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.WaitIndexed(wctx, 6); err != nil {
		t.Fatal(err)
	}
	if err := l.Index().Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.readIndexed(ctx); err != nil || l.IndexedHeight() != 0 {
		t.Fatalf("IndexedHeight after a reset = %d (%v), want 0", l.IndexedHeight(), err)
	}
	l.qMu.Lock()
	l.queue[0], l.queued[0] = []index.BlockInput{q[0], q[4]}, 4
	l.queue[1], l.queued[1] = []index.BlockInput{q[1], q[3], q[5]}, 6
	l.qMu.Unlock()
	l.signal(0)
	l.signal(1)
	if err := l.WaitIndexed(wctx, 6); err != nil {
		t.Fatalf("index at %d of 6 blocks: %v", l.IndexedHeight(), err)
	}
	if n, err := l.Index().Count(ctx); err != nil || n != 12 {
		t.Fatalf("Count = %d, %v; want 12", n, err)
	}
	// A worker drops the queued blocks its index holds when it next looks
	// at its queue, which may be just after the index reached the top.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l.qMu.Lock()
		left, queued := len(l.queue[0])+len(l.queue[1]), l.queued
		l.qMu.Unlock()
		if left == 0 && queued == [index.Shards]int{} {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queues left: %d blocks, %v entries", left, queued)
		}
	}
}

// SyncIndex rebuilds the index from the store, each shard in batches.
func TestSyncIndexInBatches(t *testing.T) {
	defer func(n int) { syncBatchEntries = n }(syncBatchEntries)
	syncBatchEntries = 4 // two blocks of two entries a batch
	l := open(t, t.TempDir(), oneHubNetwork())
	ctx := context.Background()
	for range 7 {
		appendBlock(t, l, 2)
	}
	if err := l.SyncIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Index().Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.SyncIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := l.Index().Height(ctx); err != nil || h != 7 || l.IndexedHeight() != 7 {
		t.Fatalf("index height %d (%v), IndexedHeight %d; want 7", h, err, l.IndexedHeight())
	}
	var got []string
	if err := l.Index().Each(ctx, func(r index.Ref) error { got = append(got, r.Cursor()); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 14 || got[0] != "0.0" || got[13] != "6.1" {
		t.Fatalf("index holds %v, want 0.0 to 6.1", got)
	}
}

// appendBlock appends a block of n events with uids new to l.
func appendBlock(t *testing.T, l *Ledger, n int) *chain.Block {
	t.Helper()
	entries := make([]*event.Entry, n)
	raws := make([][]byte, n)
	x := l.Expect()
	for i := range entries {
		uid := fmt.Sprint("e", x.Height, ".", i)
		entries[i] = &event.Entry{HubID: "hub-1", ReceivedMs: 1, Event: event.Event{UID: uid, Timestamp: 1, Namespace: "a/b", DeviceUID: "d",
			Items: []event.Item{{Key: "t", Value: event.Value{Kind: event.KindNumber, Num: float64(i)}}}}}
		raws[i] = entries[i].Encode()
	}
	blk := chain.Seal(chain.Header{Network: x.Network, Height: x.Height, Prev: x.Prev, HistoryRoot: x.HistoryRoot}, raws, nil, key(1))
	if err := l.Append(context.Background(), blk, entries, nil); err != nil {
		t.Fatal(err)
	}
	return blk
}

// TestBlocksStopAfterAboutBlocksBytes: a fetch returns the blocks up to
// the one whose entries pass blocksBytes, and at least one block.
func TestBlocksStopAfterAboutBlocksBytes(t *testing.T) {
	l := open(t, t.TempDir(), oneHubNetwork())
	var sizes []int
	for range 5 {
		n := 0
		for _, e := range appendBlock(t, l, 10).Entries {
			n += len(e)
		}
		sizes = append(sizes, n)
	}
	defer func(n int) { blocksBytes = n }(blocksBytes)
	blocksBytes = sizes[0] + sizes[1] + 1 // passed by the third block
	for _, c := range []struct {
		from         uint64
		max, heights int
	}{{0, 64, 3}, {3, 64, 2}, {0, 2, 2}, {4, 64, 1}, {5, 64, 0}} {
		blks, err := l.Blocks(c.from, c.max)
		if err != nil || len(blks) != c.heights {
			t.Fatalf("Blocks(%d, %d) = %d blocks, %v; want %d", c.from, c.max, len(blks), err, c.heights)
		}
		for i, b := range blks {
			if b.Header.Height != c.from+uint64(i) {
				t.Fatalf("Blocks(%d, %d): block %d is height %d", c.from, c.max, i, b.Header.Height)
			}
		}
	}
	blocksBytes = 1
	if blks, err := l.Blocks(0, 64); err != nil || len(blks) != 1 {
		t.Fatalf("a budget below one block: %d blocks, %v; want 1", len(blks), err)
	}
}

// WaitIndexQueue returns at once while the queue of the next block's shard
// is at most half full, and otherwise when that shard's worker takes from
// its queue; it gives up with its context.
func TestWaitIndexQueue(t *testing.T) {
	n := maxQueuedEntries
	t.Cleanup(func() { maxQueuedEntries = n }) // after the ledger closes
	maxQueuedEntries = 4 * index.Shards        // a share of 4
	net := oneHubNetwork()
	dir := t.TempDir()
	l := open(t, dir, net)
	ctx := context.Background()
	appendBlock(t, l, 1)
	appendBlock(t, l, 1)
	// Reopened, the ledger has indexed both blocks before its workers
	// start, and no Append wakes them: they stay idle until signaled.
	l.Close()
	l = open(t, dir, net)
	if err := l.WaitIndexQueue(ctx); err != nil {
		t.Fatalf("empty queue: %v", err)
	}
	// Fill the queues by hand with blocks indexed already, as Append
	// would but without waking the workers, so that they stay full for
	// the checks below. The next block is 2, of shard 0: shard 1's full
	// queue does not hold it back.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	l.qMu.Lock()
	l.queue[1], l.queued[1] = []index.BlockInput{{Height: 1, Entries: make([]*event.Entry, 3)}}, 3
	l.qMu.Unlock()
	if err := l.WaitIndexQueue(cctx); err != nil {
		t.Fatalf("another shard's queue full: %v", err)
	}
	l.qMu.Lock()
	l.queue[0], l.queued[0] = []index.BlockInput{{Height: 0, Entries: make([]*event.Entry, 3)}}, 3
	l.qMu.Unlock()
	if err := l.WaitIndexQueue(cctx); err == nil {
		t.Fatal("a queue over half full, the context done: no error")
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitIndexQueue(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("returned %v while the queue is over half full", err)
	case <-time.After(100 * time.Millisecond):
	}
	// Wake the worker, as Append does: it drops the block it holds.
	l.signal(0)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the queue was taken")
	}
}

// appendMinted appends a block of n events minted at mint.
func appendMinted(t *testing.T, l *Ledger, n int, mint time.Time) *chain.Block {
	t.Helper()
	entries := make([]*event.Entry, n)
	raws := make([][]byte, n)
	x := l.Expect()
	for i := range entries {
		entries[i] = &event.Entry{HubID: "hub-1", ReceivedMs: 1, Event: event.Event{UID: fmt.Sprint("m", x.Height, ".", i), Timestamp: 1, Namespace: "a/b", DeviceUID: "d"}}
		raws[i] = entries[i].Encode()
	}
	blk := chain.Seal(chain.Header{Network: x.Network, Height: x.Height, Prev: x.Prev, MintTimeMs: mint.UnixMilli(), HistoryRoot: x.HistoryRoot}, raws, nil, key(1))
	if err := l.Append(context.Background(), blk, entries, nil); err != nil {
		t.Fatal(err)
	}
	return blk
}

// With IndexWhenFinal, a new block is indexed once a quorum accepts it,
// or once the bound after its minting has passed; Close indexes every
// block at once.
func TestIndexWhenFinal(t *testing.T) {
	net := oneHubNetwork()
	dir := t.TempDir()
	ctx := context.Background()
	l, err := Open(ctx, Config{Dir: dir, Network: net, Limits: event.DefaultLimits(), Log: slog.New(slog.DiscardHandler), IndexWhenFinal: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	blk := appendMinted(t, l, 2, time.Now())
	time.Sleep(200 * time.Millisecond)
	if h := l.IndexedHeight(); h != 0 {
		t.Fatalf("a block no hub accepted yet is indexed: IndexedHeight %d", h)
	}
	v := &chain.Validation{HubID: "hub-1", Height: 0, BlockHash: blk.Header.Hash(), Verdict: chain.Accept}
	v.Sign(net.ID, key(2))
	if err := l.RecordValidation(v); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.WaitIndexed(wctx, 1); err != nil {
		t.Fatalf("the block is final: %v", err)
	}
	// Minted long enough ago: indexed though no hub accepts it.
	appendMinted(t, l, 2, time.Now().Add(-2*time.Hour))
	if err := l.WaitIndexed(wctx, 2); err != nil {
		t.Fatalf("a block past the bound: %v", err)
	}
	appendMinted(t, l, 3, time.Now())
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	x, err := index.Open(IndexPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if h, err := x.Height(ctx); err != nil || h != 3 {
		t.Fatalf("after Close the index height is %d (%v), want 3", h, err)
	}
}

// A block final or not, a ledger without IndexWhenFinal indexes it at once.
func TestIndexWithoutWaitingForFinality(t *testing.T) {
	l := open(t, t.TempDir(), oneHubNetwork())
	appendMinted(t, l, 2, time.Now())
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.WaitIndexed(wctx, 1); err != nil {
		t.Fatal(err)
	}
}
