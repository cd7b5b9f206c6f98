package synth

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/fsck"
	"cissan/internal/hub"
	"cissan/internal/identity"
	"cissan/internal/ledger"
	"cissan/internal/proof"
)

func openMaster(tb testing.TB, info *Info) *ledger.Ledger {
	tb.Helper()
	led, err := ledger.Open(context.Background(), ledger.Config{Dir: info.MasterDir, Network: info.Network, Limits: event.DefaultLimits(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { led.Close() })
	return led
}

// A built directory is a chain every check of `cissan verify data` passes,
// final and indexed, and a second Build reuses it.
func TestBuild(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "chain")
	info, err := Build(ctx, dir, 2_500, Options{PerBlock: 1_000, Devices: 50, Hubs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if info.Blocks != 3 || info.Reused || len(info.Samples) == 0 {
		t.Fatalf("built %+v", info)
	}
	led := openMaster(t, info)
	if h, f := led.Height(), led.FinalHeight(); h != 3 || f != 3 {
		t.Fatalf("height %d, final height %d; want 3, 3", h, f)
	}
	if n, err := led.Index().Count(ctx); err != nil || n != 2_500 {
		t.Fatalf("indexed %d, %v; want 2500", n, err)
	}
	rep, err := fsck.Check(ctx, "master", led.Store(), led.Index(), info.Network, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 || rep.Entries != 2_500 {
		t.Fatalf("verify: %d entries, problems %v", rep.Entries, rep.Problems)
	}
	b, err := buildProof(led, info.Samples[len(info.Samples)-1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proof.Verify(b, info.Network); err != nil {
		t.Fatal(err)
	}
	// Proofs come from the stored chunk roots of these 1,000-entry
	// blocks: verify data refuses them altered, or short.
	key := binary.BigEndian.AppendUint64([]byte{'r'}, 0)
	roots, closer, err := led.Store().DB().Get(key)
	if err != nil {
		t.Fatalf("chunk roots of block 0: %v", err)
	}
	good := append([]byte(nil), roots...)
	closer.Close()
	bad := append([]byte(nil), good...)
	bad[5] ^= 1
	for name, tamper := range map[string]func() error{
		"altered": func() error { return led.Store().DB().Set(key, bad, pebble.Sync) },
		"short":   func() error { return led.Store().DB().Set(key, good[:len(good)-32], pebble.Sync) },
	} {
		if err := tamper(); err != nil {
			t.Fatal(err)
		}
		rep, err := fsck.Check(ctx, "master", led.Store(), led.Index(), info.Network, event.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) == 0 || !strings.Contains(fmt.Sprint(rep.Problems), "chunk roots") {
			t.Errorf("chunk roots %s: verify data says %v", name, rep.Problems)
		}
	}
	// Without them (a store from before they existed), proofs read the
	// whole block, and nothing is wrong.
	if err := led.Store().DB().Delete(key, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if rep, err := fsck.Check(ctx, "master", led.Store(), led.Index(), info.Network, event.DefaultLimits()); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("without chunk roots: %v %v", rep.Problems, err)
	}
	if b, err := buildProof(led, info.Samples[0]); err != nil {
		t.Fatal(err)
	} else if _, err := proof.Verify(b, info.Network); err != nil {
		t.Fatal(err)
	}
	if err := led.Store().DB().Set(key, good, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	led.Close()

	again, err := Build(ctx, dir, 2_500, Options{PerBlock: 1_000, Devices: 50, Hubs: 2})
	if err != nil || !again.Reused || again.Network.ID != info.Network.ID {
		t.Fatalf("second build: %+v, %v; want the first one reused", again, err)
	}
}

// buildProof makes an event's proof bundle the way the API does: find the
// event by uid, read its block's header and validations, and the entry
// with its path from the entry's chunk of the block, build.
func buildProof(led *ledger.Ledger, uid string) (*proof.Bundle, error) {
	found, err := led.Find(uid, "", 0)
	if err != nil {
		return nil, err
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("uid %q names %d events", uid, len(found))
	}
	loc := found[0].At
	hdr, sig, err := led.Store().Header(loc.Height)
	if err != nil {
		return nil, err
	}
	_, vals, err := led.Accepting(loc.Height)
	if err != nil {
		return nil, err
	}
	entry, path, err := led.Store().EntryPath(loc.Height, loc.Index, hdr.EntryCount)
	if err != nil {
		return nil, err
	}
	return proof.BuildPath(led.Network().ID, hdr, sig, entry, uint64(loc.Index), path, vals, nil)
}

// BenchmarkProof10M builds proof bundles from a chain of ten million
// events, as GET /v1/events/{uid}/proof does, and verifies them offline.
func BenchmarkProof10M(b *testing.B) {
	info := ForBenchmark(b, 10_000_000, Options{})
	led := openMaster(b, info)
	b.Run("build", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := buildProof(led, info.Samples[i%len(info.Samples)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	bundle, err := buildProof(led, info.Samples[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := proof.Verify(bundle, info.Network); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// masterBus serves a hub's block fetches from the master's ledger, as the
// master does over the bus, and drops its validations.
type masterBus struct{ led *ledger.Ledger }

func (m masterBus) SubmitBatch(context.Context, *bus.Batch) ([]bus.Refusal, error) { return nil, nil }

func (m masterBus) FetchBlocks(_ context.Context, from uint64, max int) ([]*chain.Block, error) {
	return m.led.Blocks(from, max)
}

func (m masterBus) PublishValidation(context.Context, *chain.Validation) error { return nil }

// BenchmarkCatchUp1M times a fresh hub catching up with a master that
// holds a million events: it fetches every block, validates it (every
// check of a live block: signature, roots, entries, tags, uids), stores
// it and indexes it. The entries name hub-1; hub-2 catches up, as a hub
// enrolled later (or one whose disk was replaced) does. Compare its
// events/s with cissan bench's live rate.
func BenchmarkCatchUp1M(b *testing.B) {
	info := ForBenchmark(b, 1_000_000, Options{Hubs: 2, Submitters: 1})
	master := openMaster(b, info)
	key, err := identity.LoadOrCreateKey(filepath.Join(info.Dir, "hub-2", "hub.key"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		led, err := ledger.Open(ctx, ledger.Config{Dir: b.TempDir(), Network: info.Network, Limits: event.DefaultLimits(), Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		h, err := hub.New(hub.Config{ID: "hub-2", Key: key, Ledger: led, Bus: masterBus{master}, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := h.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		if err := led.WaitIndexed(ctx, master.Height()); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if led.Height() != master.Height() {
			b.Fatalf("caught up to %d of %d blocks", led.Height(), master.Height())
		}
		led.Close()
	}
	b.ReportMetric(float64(info.Events)*float64(b.N)/total.Seconds(), "events/s")
}
