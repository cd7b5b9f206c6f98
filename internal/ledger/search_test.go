package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/index"
)

// Search shows what the chain holds, and refuses rather than show an
// event a damaged index files under a filter the event does not match:
// for a reader scoped to some namespaces, that would be another
// namespace's event.
func TestSearchChecksTheIndexAgainstTheChain(t *testing.T) {
	net := oneHubNetwork()
	dir := t.TempDir()
	l := open(t, dir, net)
	ctx := context.Background()
	var entries []*event.Entry
	var raws [][]byte
	for i, d := range []struct{ dev, ns string }{{"dev-a", "acme/a"}, {"dev-b", "beta/b"}, {"dev-a", "acme/a"}} {
		en := &event.Entry{HubID: "hub-1", ReceivedMs: 1, Event: event.Event{UID: fmt.Sprint("e", i), Timestamp: int64(100 + i), Namespace: d.ns, DeviceUID: d.dev,
			Items: []event.Item{{Key: "t", Value: event.Value{Kind: event.KindNumber, Num: float64(i)}}}}}
		entries, raws = append(entries, en), append(raws, en.Encode())
	}
	x := l.Expect()
	blk := chain.Seal(chain.Header{Network: x.Network, HistoryRoot: x.HistoryRoot, MintTimeMs: 7}, raws, nil, key(1))
	if err := l.Append(ctx, blk, entries, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitIndexed(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rows, next, err := l.Search(ctx, index.Query{DeviceUID: "dev-a"})
	if err != nil || next != "" || len(rows) != 2 {
		t.Fatalf("Search(dev-a) = %d rows, %q, %v; want 2", len(rows), next, err)
	}
	if want := index.RowOf(0, 2, 7, raws[2], entries[2]); fmt.Sprint(rows[0]) != fmt.Sprint(want) {
		t.Fatalf("newest row = %+v\nwant %+v", rows[0], want)
	}

	// File dev-b's event (entry 1) under dev-a's token and under acme/a.
	db, err := sql.Open("sqlite", "file:"+IndexPath(dir)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The index's tokens for device dev-a and namespace acme/a.
	if _, err := db.Exec(`INSERT INTO event_text(rowid, body, terms) VALUES (1, '', 'ddevz2da nacmez2fa')`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []index.Query{{DeviceUID: "dev-a"}, {Namespaces: []string{"acme/a"}}, {Namespace: "acme/a", DeviceUID: "dev-a"}} {
		if rows, _, err := l.Search(ctx, q); !errors.Is(err, index.ErrCorrupt) {
			t.Errorf("Search(%+v) over a damaged index = %d rows, %v; want ErrCorrupt", q, len(rows), err)
		}
	}
	// A filter the damage does not touch still answers.
	if rows, _, err := l.Search(ctx, index.Query{DeviceUID: "dev-b"}); err != nil || len(rows) != 1 || rows[0].UID != "e1" {
		t.Fatalf("Search(dev-b) = %+v, %v", rows, err)
	}
}
