package master

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"

	"cissan/internal/analyze"
	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/ledger"
)

type publisher struct{ blocks []*chain.Block }

func (p *publisher) PublishBlock(_ context.Context, b *chain.Block) error {
	p.blocks = append(p.blocks, b)
	return nil
}

func key(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = b
	return ed25519.NewKeyFromSeed(seed)
}

type fixture struct {
	m      *Master
	led    *ledger.Ledger
	pub    *publisher
	net    *chain.Network
	mk     ed25519.PrivateKey
	hubKey ed25519.PrivateKey
	dir    string
}

func newFixture(t *testing.T, dir string) *fixture {
	t.Helper()
	f := &fixture{pub: &publisher{}, mk: key(1), hubKey: key(2), dir: dir}
	f.net = &chain.Network{ID: chain.NetworkID{3}, MasterKey: f.mk.Public().(ed25519.PublicKey), Quorum: 1,
		Hubs: []chain.HubInfo{{ID: "hub-1", PublicKey: f.hubKey.Public().(ed25519.PublicKey)}}}
	log := slog.New(slog.DiscardHandler)
	led, err := ledger.Open(context.Background(), ledger.Config{Dir: dir, Network: f.net, Limits: event.DefaultLimits(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	f.led = led
	if f.m, err = New(Config{Ledger: led, Key: f.mk, Bus: f.pub, Log: log, Analyzers: &analyze.Config{Range: analyze.DefaultRangeRules()}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// genesis mints the block that carries the initial analyzer config.
func (f *fixture) genesis(t *testing.T) {
	t.Helper()
	blk, err := f.m.Mint(context.Background())
	if err != nil || blk == nil || len(blk.Controls) != 1 || len(blk.Entries) != 0 {
		t.Fatalf("genesis block = %+v, %v; want one control record and no entries", blk, err)
	}
}

func submission(uid string, temp float64) []byte {
	en := event.Entry{HubID: "hub-1", ReceivedMs: 5, Event: event.Event{
		UID: uid, Timestamp: 1, Namespace: "a/b", DeviceUID: "d1",
		Items: []event.Item{{Key: "temperature", Value: event.Value{Kind: event.KindNumber, Num: temp}}},
	}}
	return en.Encode()
}

func (f *fixture) batch(seq uint64, entries ...[]byte) *bus.Batch {
	b := &bus.Batch{HubID: "hub-1", Seq: seq, Entries: entries}
	b.Signature = ed25519.Sign(f.hubKey, chain.BatchMessage(f.net.ID, "hub-1", seq, entries))
	return b
}

func TestMintLogsEachSubmissionOnce(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.genesis(t)
	ctx := context.Background()
	if ref, err := f.m.HandleBatch(ctx, f.batch(1, submission("a", 20), submission("b", 99))); err != nil || len(ref) != 0 {
		t.Fatalf("HandleBatch = %v, %v", ref, err)
	}
	// A resubmission of the same events changes nothing.
	if ref, err := f.m.HandleBatch(ctx, f.batch(2, submission("a", 20))); err != nil || len(ref) != 0 {
		t.Fatalf("resubmission: %v, %v", ref, err)
	}
	if n := f.m.PoolSize(); n != 2 {
		t.Fatalf("pool size %d, want 2", n)
	}
	blk, err := f.m.Mint(ctx)
	if err != nil || blk == nil {
		t.Fatalf("Mint = %v, %v", blk, err)
	}
	if len(blk.Entries) != 2 || len(f.pub.blocks) != 2 {
		t.Fatalf("block has %d entries, %d published; want 2 and 2", len(blk.Entries), len(f.pub.blocks))
	}
	en, err := event.DecodeEntry(blk.Entries[1], event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(en.Tags) != 1 || en.Tags[0].Label != "out_of_range" {
		t.Fatalf("tags of the 99 degree event = %v, want out_of_range", en.Tags)
	}
	g := f.pub.blocks[0].Header.Hash()
	x := chain.Expect{Network: f.net.ID, Height: 1, Prev: g, MasterKey: f.net.MasterKey, Hubs: f.net.Hubs, HistoryRoot: chain.Root([]chain.Hash{chain.BlockLeaf(g)}), Limits: event.DefaultLimits()}
	if _, err := blk.Check(x); err != nil {
		t.Fatalf("minted block fails its own checks: %v", err)
	}
	// After the block, the same events are still duplicates; other
	// content under a logged uid of the same device (which two hubs
	// acknowledged) is the event's second version, and is logged too.
	ref, err := f.m.HandleBatch(ctx, f.batch(3, submission("a", 20), submission("b", 1)))
	if err != nil || len(ref) != 0 {
		t.Fatalf("after mint: refusals %v, err %v; want none", ref, err)
	}
	if n := f.m.PoolSize(); n != 1 {
		t.Fatalf("pool size %d, want 1: b's second version", n)
	}
	blk, err = f.m.Mint(ctx)
	if err != nil || blk == nil || len(blk.Entries) != 1 {
		t.Fatalf("mint of the second version = %v, %v", blk, err)
	}
	found, err := f.led.Find("b", "d1", 0)
	if err != nil || len(found) != 2 || found[0].Entry.Event.Items[0].Value.Num != 99 || found[1].Entry.Event.Items[0].Value.Num != 1 {
		t.Fatalf("versions of b = %+v, %v; want 99 then 1", found, err)
	}
	if blk, _ := f.m.Mint(ctx); blk != nil {
		t.Fatalf("minted a block of %d entries from duplicates", len(blk.Entries))
	}
}

func TestBatchRefusals(t *testing.T) {
	f := newFixture(t, t.TempDir())
	ctx := context.Background()
	good := f.batch(1, submission("a", 20))
	badSig := f.batch(1, submission("a", 20))
	badSig.Signature[0] ^= 1
	unknown := f.batch(1, submission("a", 20))
	unknown.HubID = "hub-9"
	tagged := event.Entry{HubID: "hub-1", Event: event.Event{UID: "t", Timestamp: 1, Namespace: "a/b", DeviceUID: "d",
		Items: []event.Item{{Key: "k", Value: event.Value{Kind: event.KindBool}}}}, Tags: []event.Tag{{Analyzer: "x", Label: "y"}}}
	for name, c := range map[string]struct {
		b    *bus.Batch
		want string
	}{
		"bad signature":  {badSig, "signature"},
		"unknown hub":    {unknown, "unknown hub"},
		"tags submitted": {f.batch(2, tagged.Encode()), "do not belong"},
		"garbage entry":  {f.batch(3, []byte{1, 2, 3}), "entry 0"},
		"other hub's id": {f.batch(4, (&event.Entry{HubID: "hub-2", Event: tagged.Event}).Encode()), "do not belong"},
	} {
		if _, err := f.m.HandleBatch(ctx, c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one mentioning %q", name, err, c.want)
		}
	}
	if n := f.m.PoolSize(); n != 0 {
		t.Fatalf("refused batches left %d events in the pool", n)
	}
	if _, err := f.m.HandleBatch(ctx, good); err != nil {
		t.Fatal(err)
	}
	// Other content under a pending uid of the same device is another
	// version of the event, pooled beside the first.
	ref, err := f.m.HandleBatch(ctx, f.batch(5, submission("a", 21)))
	if err != nil || len(ref) != 0 {
		t.Fatalf("second version of a pending event: %v, %v", ref, err)
	}
	// One batch holding a uid three times: pooled once, the same event
	// again is a resubmission, other content another version.
	ref, err = f.m.HandleBatch(ctx, f.batch(6, submission("c", 20), submission("c", 20), submission("c", 22)))
	if err != nil || len(ref) != 0 {
		t.Fatalf("uid three times in a batch: refusals %v, err %v", ref, err)
	}
	if n := f.m.PoolSize(); n != 4 {
		t.Fatalf("pool holds %d events, want a's and c's two versions each", n)
	}
	blk, err := f.m.Mint(ctx)
	if err != nil || blk == nil || len(blk.Entries) != 4 {
		t.Fatalf("mint = %v, %v; want the four versions in one block", blk, err)
	}
}

func TestPoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	ctx := context.Background()
	if _, err := f.m.HandleBatch(ctx, f.batch(1, submission("a", 20), submission("b", 21))); err != nil {
		t.Fatal(err)
	}
	f.led.Close()
	g := newFixture(t, dir)
	if n := g.m.PoolSize(); n != 2 {
		t.Fatalf("pool after restart holds %d, want 2", n)
	}
	blk, err := g.m.Mint(ctx)
	if err != nil || blk == nil || len(blk.Entries) != 2 {
		t.Fatalf("mint after restart: %v %v", blk, err)
	}
}

func TestValidationsDecideFinality(t *testing.T) {
	f := newFixture(t, t.TempDir())
	ctx := context.Background()
	if _, err := f.m.HandleBatch(ctx, f.batch(1, submission("a", 20))); err != nil {
		t.Fatal(err)
	}
	blk, err := f.m.Mint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := &chain.Validation{HubID: "hub-1", Height: 0, BlockHash: blk.Header.Hash(), Verdict: chain.Accept}
	v.Sign(f.net.ID, key(9)) // wrong key
	if err := f.m.HandleValidation(ctx, v); err == nil {
		t.Fatal("validation signed by the wrong key was recorded")
	}
	if final, _ := f.led.Final(0); final {
		t.Fatal("block final without a valid validation")
	}
	v.Sign(f.net.ID, f.hubKey)
	if err := f.m.HandleValidation(ctx, v); err != nil {
		t.Fatal(err)
	}
	// A block is final once the quorum accepted it and this node has
	// indexed it (so that a final event is always found by search).
	if err := f.led.WaitIndexed(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if final, _ := f.led.Final(0); !final {
		t.Fatal("block not final after the quorum accepted it")
	}
	wrongBlock := *v
	wrongBlock.BlockHash[0] ^= 1
	wrongBlock.Sign(f.net.ID, f.hubKey)
	if err := f.m.HandleValidation(ctx, &wrongBlock); err == nil || !strings.Contains(err.Error(), "block hash") {
		t.Fatalf("validation of another block hash: %v", err)
	}
}

func TestEnrolHub(t *testing.T) {
	f := newFixture(t, t.TempDir())
	ctx := context.Background()
	newKey := key(7).Public().(ed25519.PublicKey)
	hexKey := hex.EncodeToString(newKey)
	for name, c := range map[string]struct {
		e    chain.Enrolment
		want string
	}{
		"enrolled already": {chain.Enrolment{ID: "hub-1", PublicKey: hexKey}, "already enrolled"},
		"reserved id":      {chain.Enrolment{ID: "registry", PublicKey: hexKey}, "reserved"},
		"bad id":           {chain.Enrolment{ID: "hub 2", PublicKey: hexKey}, "hub id"},
		"bad key":          {chain.Enrolment{ID: "hub-2", PublicKey: "00"}, "public_key"},
		"key of hub-1":     {chain.Enrolment{ID: "hub-2", PublicKey: hex.EncodeToString(f.hubKey.Public().(ed25519.PublicKey))}, "already enrolled for hub-1"},
	} {
		if err := f.m.EnrolHub(c.e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: EnrolHub = %v, want an error with %q", name, err, c.want)
		}
	}
	if err := f.m.EnrolHub(chain.Enrolment{ID: "hub-2", PublicKey: hexKey}); err != nil {
		t.Fatal(err)
	}
	if err := f.m.EnrolHub(chain.Enrolment{ID: "hub-2", PublicKey: hexKey}); err == nil {
		t.Fatal("a hub waiting for enrolment was queued twice")
	}
	blk, err := f.m.Mint(ctx)
	if err != nil || blk == nil {
		t.Fatalf("Mint = %v, %v", blk, err)
	}
	hub := f.led.Network().Hub("hub-2")
	if hub == nil || !hub.PublicKey.Equal(newKey) || hub.FromHeight != blk.Header.Height+1 {
		t.Fatalf("after block %d the network has hub-2 = %+v, want it from height %d", blk.Header.Height, hub, blk.Header.Height+1)
	}
	// A batch signed by the new hub is now taken.
	b := &bus.Batch{HubID: "hub-2", Seq: 1, Entries: [][]byte{(&event.Entry{HubID: "hub-2", ReceivedMs: 1, Event: event.Event{
		UID: "n1", Timestamp: 1, Namespace: "a/b", DeviceUID: "d", Items: []event.Item{{Key: "k", Value: event.Value{Kind: event.KindBool}}}}}).Encode()}}
	b.Signature = ed25519.Sign(key(7), chain.BatchMessage(f.net.ID, "hub-2", 1, b.Entries))
	if _, err := f.m.HandleBatch(ctx, b); err != nil {
		t.Fatalf("batch from the enrolled hub: %v", err)
	}
	// The enrolment survives a restart: the ledger replays it from the chain.
	f.led.Close()
	g := newFixture(t, f.dir)
	if g.led.Network().Hub("hub-2") == nil {
		t.Fatal("hub-2 forgotten after a restart")
	}
}
