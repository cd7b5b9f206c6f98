package hub

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/ledger"
)

// fakeBus records what a hub publishes; blocks come from the test itself.
type fakeBus struct {
	mu          sync.Mutex
	validations []*chain.Validation
	fetch       func(from uint64) []*chain.Block
	failNext    int // this many PublishValidation calls fail
}

func (f *fakeBus) SubmitBatch(context.Context, *bus.Batch) ([]bus.Refusal, error) { return nil, nil }

func (f *fakeBus) FetchBlocks(_ context.Context, from uint64, _ int) ([]*chain.Block, error) {
	if f.fetch == nil {
		return nil, nil
	}
	return f.fetch(from), nil
}

func (f *fakeBus) PublishValidation(_ context.Context, v *chain.Validation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		return errors.New("bus unavailable")
	}
	f.validations = append(f.validations, v)
	return nil
}

func (f *fakeBus) last(t *testing.T) *chain.Validation {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.validations) == 0 {
		t.Fatal("hub published no validation")
	}
	return f.validations[len(f.validations)-1]
}

type fixture struct {
	hub       *Hub
	bus       *fakeBus
	net       *chain.Network
	masterKey ed25519.PrivateKey
	hubKey    ed25519.PrivateKey
	genesis   *chain.Block
}

func key(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	return ed25519.NewKeyFromSeed(seed)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, analyze.Config{Range: analyze.DefaultRangeRules()})
}

// newFixtureWith starts a hub whose chain's first block records cfg.
func newFixtureWith(t *testing.T, cfg analyze.Config) *fixture {
	t.Helper()
	f := &fixture{bus: &fakeBus{}, masterKey: key(1), hubKey: key(2)}
	f.net = &chain.Network{
		ID: chain.NetworkID{7}, MasterKey: f.masterKey.Public().(ed25519.PublicKey), Quorum: 1,
		Hubs: []chain.HubInfo{{ID: "hub-1", PublicKey: f.hubKey.Public().(ed25519.PublicKey)}, {ID: "hub-2", PublicKey: key(3).Public().(ed25519.PublicKey)}},
	}
	log := slog.New(slog.DiscardHandler)
	led, err := ledger.Open(context.Background(), ledger.Config{Dir: t.TempDir(), Network: f.net, Limits: event.DefaultLimits(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	h, err := New(Config{ID: "hub-1", Key: f.hubKey, Ledger: led, Bus: f.bus, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h.ctx = context.Background()
	f.hub = h
	// Block 0 puts the analyzers in force, as a master's first block does.
	genesis := chain.Seal(chain.Header{Network: f.net.ID, HistoryRoot: chain.EmptyRoot},
		nil, [][]byte{chain.Control{Kind: chain.ControlAnalyzers, Body: cfg.Encode()}.Encode()}, f.masterKey)
	if err := h.HandleBlock(context.Background(), genesis); err != nil {
		t.Fatalf("genesis block: %v", err)
	}
	f.genesis = genesis
	f.bus.validations = nil
	return f
}

func sampleEvent(uid string, temp float64) event.Event {
	return event.Event{
		UID: uid, Timestamp: 1696248400000, Namespace: "acme/weather", DeviceUID: "ws-1",
		Items: []event.Item{{Key: "temperature", Value: event.Value{Kind: event.KindNumber, Num: temp}}},
	}
}

// submit makes an event durable in the hub's pool as ingest would, and
// returns the entry the master should log for it.
func (f *fixture) submit(t *testing.T, ev event.Event) *event.Entry {
	t.Helper()
	en := &event.Entry{Event: ev, HubID: "hub-1", ReceivedMs: 1696248400123}
	done := make(chan error, 1)
	r := &commitReq{id: ev.ID(), content: event.ContentHash(&ev), raw: en.Encode(), done: func(err error) { done <- err }}
	f.hub.commitGroup([]*commitReq{r})
	if err := <-done; err != nil {
		t.Fatalf("submit %s: %v", ev.UID, err)
	}
	en.Tags = f.hub.led.Analyzers().Tags(&en.Event)
	return en
}

// block seals entries as the master would at the hub's next height.
func (f *fixture) block(entries ...*event.Entry) *chain.Block {
	x := f.hub.led.Expect()
	raws := make([][]byte, len(entries))
	for i, en := range entries {
		raws[i] = en.Encode()
	}
	return chain.Seal(chain.Header{Network: x.Network, Height: x.Height, Prev: x.Prev, HistoryRoot: x.HistoryRoot, MintTimeMs: time.Now().UnixMilli()}, raws, nil, f.masterKey)
}

func TestHubAcceptsFaithfulBlock(t *testing.T) {
	f := newFixture(t)
	a := f.submit(t, sampleEvent("e1", 21.5))
	b := f.submit(t, sampleEvent("e2", 120)) // out of range: tagged
	if len(b.Tags) != 1 || b.Tags[0].Label != "out_of_range" {
		t.Fatalf("expected an out_of_range tag, got %v", b.Tags)
	}
	if err := f.hub.HandleBlock(context.Background(), f.block(a, b)); err != nil {
		t.Fatalf("faithful block rejected: %v", err)
	}
	v := f.bus.last(t)
	if v.Verdict != chain.Accept || v.Height != 1 {
		t.Fatalf("validation = %+v, want accept of height 1", v)
	}
	if err := v.Verify(f.net.ID, f.hubKey.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if got := f.hub.led.Height(); got != 2 {
		t.Fatalf("hub height %d after accepting, want 2", got)
	}
	if n := f.hub.PoolSize(); n != 0 {
		t.Fatalf("pool holds %d events after the block covered them, want 0", n)
	}
}

func TestHubRejectsUnfaithfulBlocks(t *testing.T) {
	cases := []struct {
		name   string
		forge  func(t *testing.T, f *fixture, good *event.Entry) *chain.Block
		reason string
	}{
		{"event value misstated", func(t *testing.T, f *fixture, good *event.Entry) *chain.Block {
			bad := *good
			bad.Event = sampleEvent(good.Event.UID, 22.5)
			return f.block(&bad)
		}, "misstates what this hub submitted"},
		{"receive time misstated", func(t *testing.T, f *fixture, good *event.Entry) *chain.Block {
			bad := *good
			bad.ReceivedMs++
			return f.block(&bad)
		}, "misstates what this hub submitted"},
		{"tag added", func(t *testing.T, f *fixture, good *event.Entry) *chain.Block {
			bad := *good
			bad.Tags = []event.Tag{{Analyzer: "range", Key: "temperature", Label: "out_of_range"}}
			return f.block(&bad)
		}, "analyzer tags"},
		{"score changed", func(t *testing.T, f *fixture, _ *event.Entry) *chain.Block {
			hot := f.submit(t, sampleEvent("hot", 120))
			hot.Tags[0].Score++
			return f.block(hot)
		}, "analyzer tags"},
		{"event this hub never submitted", func(t *testing.T, f *fixture, good *event.Entry) *chain.Block {
			ghost := &event.Entry{Event: sampleEvent("ghost", 20), HubID: "hub-1", ReceivedMs: 1}
			return f.block(good, ghost)
		}, "never submitted"},
		{"entry from a hub not in the network", func(t *testing.T, f *fixture, good *event.Entry) *chain.Block {
			ghost := &event.Entry{Event: sampleEvent("ghost", 20), HubID: "hub-9", ReceivedMs: 1}
			return f.block(good, ghost)
		}, "not a hub of the network"},
		{"bad master signature", func(t *testing.T, f *fixture, good *event.Entry) *chain.Block {
			b := f.block(good)
			b.Signature = ed25519.Sign(key(9), chain.BlockMessage(b.Header.Hash()))
			return b
		}, "master signature"},
		{"entries changed after sealing", func(t *testing.T, f *fixture, good *event.Entry) *chain.Block {
			b := f.block(good)
			other := *good
			other.ReceivedMs = 5
			b.Entries[0] = other.Encode()
			return b
		}, "entries_root"},
		{"broken link", func(t *testing.T, f *fixture, good *event.Entry) *chain.Block {
			b := f.block(good)
			b.Header.Prev[0] ^= 1
			b.Signature = ed25519.Sign(f.masterKey, chain.BlockMessage(b.Header.Hash()))
			return b
		}, "prev_hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			good := f.submit(t, sampleEvent("e1", 21.5))
			blk := c.forge(t, f, good)
			err := f.hub.HandleBlock(context.Background(), blk)
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("HandleBlock = %v, want a rejection mentioning %q", err, c.reason)
			}
			v := f.bus.last(t)
			if v.Verdict != chain.Reject || !strings.Contains(v.Reason, c.reason) {
				t.Fatalf("validation = %v %q, want reject mentioning %q", v.Verdict, v.Reason, c.reason)
			}
			if err := v.Verify(f.net.ID, f.hubKey.Public().(ed25519.PublicKey)); err != nil {
				t.Fatalf("rejection is not properly signed: %v", err)
			}
			if h := f.hub.led.Height(); h != 1 {
				t.Fatalf("rejected block was stored: height %d", h)
			}
			if !f.hub.Pending("e1", "") {
				t.Fatal("the hub's event left its pool although no valid block covers it")
			}
		})
	}
}

func TestHubCatchesUpBeforeValidating(t *testing.T) {
	f := newFixture(t)
	b1 := f.block(f.submit(t, sampleEvent("e1", 20)))
	e2 := f.submit(t, sampleEvent("e2", 21))
	// Block 2 as the master mints it after block 1.
	h0, h1 := f.genesis.Header.Hash(), b1.Header.Hash()
	b2 := chain.Seal(chain.Header{
		Network: f.net.ID, Height: 2, Prev: h1, MintTimeMs: 1,
		HistoryRoot: chain.Root([]chain.Hash{chain.BlockLeaf(h0), chain.BlockLeaf(h1)}),
	}, [][]byte{e2.Encode()}, nil, f.masterKey)
	f.bus.fetch = func(from uint64) []*chain.Block {
		if from == 1 {
			return []*chain.Block{b1}
		}
		return nil
	}
	// Block 1 is lost on the way; block 2 arrives first.
	if err := f.hub.HandleBlock(context.Background(), b2); err != nil {
		t.Fatalf("HandleBlock(2): %v", err)
	}
	if h := f.hub.led.Height(); h != 3 {
		t.Fatalf("height %d after catching up, want 3", h)
	}
	if len(f.bus.validations) != 2 || f.bus.validations[0].Height != 1 || f.bus.validations[1].Height != 2 {
		t.Fatalf("validations %v, want accepts of heights 1 then 2", f.bus.validations)
	}
	// A repeat of a block already stored is ignored, not validated again.
	if err := f.hub.HandleBlock(context.Background(), b1); err != nil || len(f.bus.validations) != 2 {
		t.Fatalf("repeat of block 1: err %v, %d validations", err, len(f.bus.validations))
	}
}

func TestHubRejectsUnusableAnalyzerConfig(t *testing.T) {
	f := newFixture(t)
	x := f.hub.led.Expect()
	bad := chain.Seal(chain.Header{Network: x.Network, Height: x.Height, Prev: x.Prev, HistoryRoot: x.HistoryRoot},
		nil, [][]byte{chain.Control{Kind: chain.ControlAnalyzers, Body: []byte(`{"range":[{"key":"t","min":5,"max":1}]}`)}.Encode()}, f.masterKey)
	err := f.hub.HandleBlock(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), "min must not exceed max") {
		t.Fatalf("HandleBlock = %v, want a rejection of the config", err)
	}
}

// TestEveryHubRejectsAChangedScore trains an Isolation Forest on two hubs
// from the same chain, then offers both a block in which one entry's
// anomaly score is one unit off: each must reject it.
func TestEveryHubRejectsAChangedScore(t *testing.T) {
	cfg := analyze.Config{IForest: []analyze.IForestConfig{{Keys: []string{"temperature"}, MinTrain: 8, SampleSize: 8, Window: 64, RetrainEvery: 1, Threshold: 0.01}}}
	a, b := newFixtureWith(t, cfg), newFixtureWith(t, cfg)
	for _, f := range []*fixture{b} { // one chain, two hubs: same keys, same genesis
		f.masterKey, f.net = a.masterKey, a.net
	}
	if a.genesis.Header.Hash() != b.genesis.Header.Hash() {
		t.Fatal("the two hubs do not share a chain")
	}
	hubs := []*fixture{a, b}
	for h := 0; h < 3; h++ { // train, then put the model in force
		var entries []*event.Entry
		for i := 0; i < 10; i++ {
			ev := sampleEvent(fmt.Sprintf("b%d-e%d", h, i), 20+float64(i)/10)
			for _, f := range hubs {
				entries = append(entries[:i], f.submit(t, ev))
			}
		}
		blk := a.block(entries...)
		for _, f := range hubs {
			if err := f.hub.HandleBlock(context.Background(), blk); err != nil {
				t.Fatalf("block %d: %v", blk.Header.Height, err)
			}
		}
	}
	var hot *event.Entry
	for _, f := range hubs {
		hot = f.submit(t, sampleEvent("hot", 95))
	}
	if len(hot.Tags) != 1 || hot.Tags[0].Analyzer != "iforest" {
		t.Fatalf("the outlier got tags %v, want one iforest tag", hot.Tags)
	}
	hot.Tags[0].Score++
	forged := a.block(hot)
	for i, f := range hubs {
		err := f.hub.HandleBlock(context.Background(), forged)
		if err == nil || !strings.Contains(err.Error(), "analyzer tags") {
			t.Fatalf("hub %d accepted a block with a changed score: %v", i, err)
		}
	}
}

func TestHubRejectsAnEventLoggedTwice(t *testing.T) {
	f := newFixture(t)
	e1 := f.submit(t, sampleEvent("e1", 20))
	if err := f.hub.HandleBlock(context.Background(), f.block(e1)); err != nil {
		t.Fatal(err)
	}
	err := f.hub.HandleBlock(context.Background(), f.block(e1))
	if err == nil || !strings.Contains(err.Error(), "already logged in block 1") {
		t.Fatalf("HandleBlock of a block repeating e1 = %v, want a rejection", err)
	}
	if h := f.hub.led.Height(); h != 2 {
		t.Fatalf("height %d, want 2: the repeat must not be stored", h)
	}
}

// TestRetransmitInOneCommitGroupWaitsForTheCommit: a retransmit that
// arrives while its first copy waits for the fsync is answered only with
// the first copy's outcome.
func TestRetransmitInOneCommitGroupWaitsForTheCommit(t *testing.T) {
	f := newFixture(t)
	ev := sampleEvent("e1", 20)
	en := &event.Entry{Event: ev, HubID: "hub-1", ReceivedMs: 1}
	other := sampleEvent("e1", 21)
	outcome := map[*commitReq]chan error{}
	mk := func(e *event.Event) *commitReq {
		ch := make(chan error, 1)
		r := &commitReq{id: e.ID(), content: event.ContentHash(e), raw: en.Encode(), done: func(err error) { ch <- err }}
		outcome[r] = ch
		return r
	}
	a, b, c := mk(&ev), mk(&ev), mk(&other)
	f.hub.commitGroup([]*commitReq{a, b, c})
	for name, r := range map[string]*commitReq{"first copy": a, "retransmit": b} {
		if err := <-outcome[r]; err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := <-outcome[c]; err == nil || !strings.Contains(err.Error(), "already used by another event") {
		t.Fatalf("conflicting copy: %v", err)
	}
	if _, err := f.hub.led.Store().Pool(event.VersionKey(ev.ID(), event.ContentHash(&ev))); err != nil {
		t.Fatalf("event answered but not in the durable pool: %v", err)
	}
}

func TestHubRetriesAVerdictItCouldNotPublish(t *testing.T) {
	f := newFixture(t)
	f.bus.failNext = 1
	if err := f.hub.HandleBlock(context.Background(), f.block(f.submit(t, sampleEvent("e1", 20)))); err != nil {
		t.Fatal(err)
	}
	if len(f.bus.validations) != 0 {
		t.Fatal("the failed publication was recorded as sent")
	}
	f.hub.retryValidations(context.Background())
	if v := f.bus.last(t); v.Height != 1 || v.Verdict != chain.Accept {
		t.Fatalf("retried validation %+v, want the accept of block 1", v)
	}
}

// TestHubKeepsAVerdictThatArrivesBeforeItsBlock: another hub's validation
// of a block this hub has not stored yet is recorded once the block is.
func TestHubKeepsAVerdictThatArrivesBeforeItsBlock(t *testing.T) {
	f := newFixture(t)
	blk := f.block(f.submit(t, sampleEvent("e1", 20)))
	other := &chain.Validation{HubID: "hub-2", Height: blk.Header.Height, BlockHash: blk.Header.Hash(), Verdict: chain.Accept}
	other.Sign(f.net.ID, key(3))
	if err := f.hub.HandleValidation(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	if err := f.hub.HandleBlock(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	ok, _, err := f.hub.led.Accepting(blk.Header.Height)
	if err != nil || len(ok) != 2 {
		t.Fatalf("accepting hubs of block %d = %v, %v; want hub-1 and hub-2", blk.Header.Height, ok, err)
	}
	if len(f.hub.early) != 0 {
		t.Fatalf("%d early validations still kept after their block", len(f.hub.early))
	}
}
