package ledger

import (
	"context"
	"errors"
	"testing"

	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/store"
)

func poolEvent(uid, device string, v float64) *event.Entry {
	return &event.Entry{HubID: "hub-1", ReceivedMs: 1, Event: event.Event{UID: uid, Timestamp: 1, Namespace: "a/b", DeviceUID: device,
		Items: []event.Item{{Key: "t", Value: event.Value{Kind: event.KindNumber, Num: v}}}}}
}

func versionKey(en *event.Entry) string {
	return event.VersionKey(en.Event.ID(), event.ContentHash(&en.Event))
}

// TestOpenDropsLoggedPoolRecords: a crash after a block was stored but
// before its events left the pool leaves pool records of logged events;
// opening the ledger deletes them, and only them: not another version of a
// logged event (other content under its uid and device), and not the same
// uid of another device.
func TestOpenDropsLoggedPoolRecords(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, oneHubNetwork())
	logged, version, otherDevice, waiting := poolEvent("e1", "d1", 1), poolEvent("e1", "d1", 2), poolEvent("e1", "d2", 1), poolEvent("e2", "d1", 1)
	b := l.Store().NewBatch()
	for i, en := range []*event.Entry{logged, version, otherDevice, waiting} {
		if err := b.PutPool(versionKey(en), uint64(i+1), en.Encode()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	// The block logs the first; the crash comes before its deletion.
	x := l.Expect()
	blk := chain.Seal(chain.Header{Network: x.Network, HistoryRoot: x.HistoryRoot}, [][]byte{logged.Encode()}, nil, key(1))
	if err := l.Append(context.Background(), blk, []*event.Entry{logged}, nil); err != nil {
		t.Fatal(err)
	}
	l.Close()

	l = open(t, dir, oneHubNetwork())
	if _, err := l.Store().Pool(versionKey(logged)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pool record of the logged event: %v, want it deleted", err)
	}
	for name, en := range map[string]*event.Entry{"another version": version, "another device's": otherDevice, "a waiting event": waiting} {
		if _, err := l.Store().Pool(versionKey(en)); err != nil {
			t.Errorf("pool record of %s: %v, want it kept", name, err)
		}
	}
	n := 0
	if err := l.Store().EachSeq(func(uint64, string) error { n++; return nil }); err != nil || n != 3 {
		t.Fatalf("%d arrival-order records (%v), want 3", n, err)
	}
}

// Holds tells a logged version from another version of the same event.
func TestHoldsTellsVersionsApart(t *testing.T) {
	l := open(t, t.TempDir(), oneHubNetwork())
	first, second := poolEvent("e1", "d1", 1), poolEvent("e1", "d1", 2)
	for _, en := range []*event.Entry{first, second} {
		x := l.Expect()
		blk := chain.Seal(chain.Header{Network: x.Network, Height: x.Height, Prev: x.Prev, HistoryRoot: x.HistoryRoot}, [][]byte{en.Encode()}, nil, key(1))
		if err := l.Append(context.Background(), blk, []*event.Entry{en}, nil); err != nil {
			t.Fatal(err)
		}
	}
	third := poolEvent("e1", "d1", 3)
	asked := []*event.Entry{second, third, poolEvent("e1", "d2", 1)}
	ids := []string{second.Event.ID(), third.Event.ID(), asked[2].Event.ID()}
	var got []Held
	err := l.Holds(ids, func(i int) chain.Hash { return event.ContentHash(&asked[i].Event) }, func(i int, h Held) error {
		got = append(got, h)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Same || got[0].At.Height != 1 || len(got[0].Others) != 1 || got[0].Others[0].Height != 0 {
		t.Errorf("the second version: %+v, want it held at block 1 beside the first at block 0", got[0])
	}
	if got[1].Same || len(got[1].Others) != 2 {
		t.Errorf("a third version: %+v, want not held, two others", got[1])
	}
	if got[2].Same || len(got[2].Others) != 0 {
		t.Errorf("another device's event: %+v, want nothing held", got[2])
	}
	found, err := l.Find("e1", "d1", 0)
	if err != nil || len(found) != 2 || found[0].Version != 1 || found[1].Version != 2 || found[1].Entry.Event.Items[0].Value.Num != 2 {
		t.Fatalf("Find(e1, d1) = %+v, %v; want both versions in order", found, err)
	}
	if found, err := l.Find("e1", "d1", 2); err != nil || len(found) != 1 || found[0].At.Height != 1 {
		t.Fatalf("Find(e1, d1, version 2) = %+v, %v", found, err)
	}
	if found, err := l.Find("e1", "d2", 0); err != nil || len(found) != 0 {
		t.Fatalf("Find(e1, d2) = %+v, %v; want nothing", found, err)
	}
}
