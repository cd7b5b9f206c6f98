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
	defer func(n int) { maxQueuedEntries = n }(maxQueuedEntries)
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

func TestEvenBatch(t *testing.T) {
	q := make([]index.BlockInput, 7)
	for i := range q {
		q[i].Height = uint64(i)
	}
	for n, want := range map[int]int{0: 0, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 7: 6} {
		now, later := evenBatch(q[:n])
		if len(now) != want || len(later) != n-want || (len(later) > 0 && later[0].Height != uint64(want)) {
			t.Errorf("evenBatch of %d blocks = %d now, %d later; want %d now", n, len(now), len(later), want)
		}
	}
}

// Blocks left for the next batch are indexed too, though no Append comes
// to wake the indexer for them.
func TestIndexTakesTheBlocksLeftForTheNextBatch(t *testing.T) {
	l := open(t, t.TempDir(), oneHubNetwork())
	var q []index.BlockInput
	for range 3 {
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
	if err := l.WaitIndexed(wctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := l.Index().Reset(ctx); err != nil {
		t.Fatal(err)
	}
	l.setIndexed(0)
	l.qMu.Lock()
	l.idxq, l.idxqN = q, 6
	l.qMu.Unlock()
	l.idxSig <- struct{}{}
	if err := l.WaitIndexed(wctx, 3); err != nil {
		t.Fatalf("index at %d of 3 blocks: %v", l.IndexedHeight(), err)
	}
	if n, err := l.Index().Count(ctx); err != nil || n != 6 {
		t.Fatalf("Count = %d, %v; want 6", n, err)
	}
}

// SyncIndex rebuilds the index from the store in batches, reading each
// batch while the index takes the one before.
func TestSyncIndexInBatches(t *testing.T) {
	defer func(n int) { syncBatchEntries = n }(syncBatchEntries)
	syncBatchEntries = 3 // two blocks of two entries a batch
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

// WaitIndexQueue returns at once while the indexer's queue is at most half
// full, and otherwise when the indexer takes the queue; it gives up with
// its context.
func TestWaitIndexQueue(t *testing.T) {
	defer func(n int) { maxQueuedEntries = n }(maxQueuedEntries)
	maxQueuedEntries = 4
	net := oneHubNetwork()
	l := open(t, t.TempDir(), net)
	ctx := context.Background()
	if err := l.WaitIndexQueue(ctx); err != nil {
		t.Fatalf("empty queue: %v", err)
	}
	// Fill the queue by hand, as Append does but without waking the
	// indexer, so that it stays full for the checks below.
	l.qMu.Lock()
	l.idxq = append(l.idxq, index.BlockInput{Height: 99})
	l.idxqN = 3
	l.qMu.Unlock()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
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
	// Wake the indexer, as Append does: it takes the queue (and, finding
	// a gap below height 99, reads the store, which holds nothing more).
	l.idxSig <- struct{}{}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the queue was taken")
	}
}
