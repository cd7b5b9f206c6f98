package local_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/identity"
)

// TestHubsRejectABadBlockOnTheRecord: when the master stores a block that
// claims an event from hub-1 that hub-1 never took in, hub-1 rejects it
// with a signed verdict that says why, hub-2 (which cannot know) accepts
// it, the master records both, and the block never becomes final, since
// the quorum is every hub.
func TestHubsRejectABadBlockOnTheRecord(t *testing.T) {
	dir := t.TempDir()
	tn := startNet(t, dir, 2)
	led := tn.Master.Ledger()
	for deadline := time.Now().Add(finalDeadline); led.FinalHeight() < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first block never became final")
		}
	}
	// A master gone wrong: it logs an event in hub-1's name that hub-1
	// never took in, signs the block, and serves it to the hubs.
	key, err := identity.LoadOrCreateKey(filepath.Join(dir, "master", "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	ghost := &event.Entry{HubID: "hub-1", ReceivedMs: 1, Event: event.Event{UID: "ghost", Timestamp: 1, Namespace: "acme/lab", DeviceUID: "dev-x",
		Items: []event.Item{{Key: "temperature", Value: event.Value{Kind: event.KindNumber, Num: 20}}}}}
	x := led.Expect()
	blk := chain.Seal(chain.Header{Network: x.Network, Height: x.Height, Prev: x.Prev, HistoryRoot: x.HistoryRoot, MintTimeMs: 1},
		[][]byte{ghost.Encode()}, nil, key)
	if err := led.Append(context.Background(), blk, []*event.Entry{ghost}, nil); err != nil {
		t.Fatal(err)
	}
	// The hubs fetch it when they next catch up, and reject it.
	path := fmt.Sprintf("/v1/blocks/%d", x.Height)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b := tn.block(x.Height)
		if b.Rejected+b.Accepted == 2 {
			if b.Final || b.Rejected != 1 {
				t.Fatalf("GET %s: %+v, want hub-1's rejection and no finality", path, b)
			}
			for _, v := range b.Validations {
				if v.HubID == "hub-1" && (v.Verdict != "reject" || !strings.Contains(v.Reason, "never submitted")) {
					t.Fatalf("hub-1's validation %+v, want a reject saying why", v)
				}
			}
			time.Sleep(3 * blockInterval)
			if b := tn.block(x.Height); b.Final {
				t.Fatalf("GET %s: final without the quorum", path)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %+v, want both hubs' verdicts recorded", path, b)
		}
	}
}
