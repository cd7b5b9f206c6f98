package chain

import (
	"crypto/ed25519"
	"strconv"
	"testing"

	"cissan/internal/event"
)

// BenchmarkBlockCheck10k runs every check a hub makes of a block of
// 10,000 seed-format entries before it countersigns: signature, links,
// roots, and every entry decoded and checked.
func BenchmarkBlockCheck10k(b *testing.B) {
	const n = 10_000
	master := key(1)
	var net NetworkID
	copy(net[:], "bench-network-id")
	entries := make([][]byte, n)
	for i := range entries {
		en := event.Entry{
			Event: event.Event{UID: "7488f8aa-97c7-4c4f-a546-" + strconv.Itoa(100000000000+i), Timestamp: 1696248400000 + int64(i),
				Namespace: "acme/weather", DeviceUID: "ws-" + strconv.Itoa(i%500),
				Items: []event.Item{
					{Key: "temperature", Value: event.Value{Kind: event.KindNumber, Num: 25.3}},
					{Key: "humidity", Value: event.Value{Kind: event.KindNumber, Num: 48.1}},
					{Key: "battery", Value: event.Value{Kind: event.KindNumber, Num: 99.9}},
				}},
			HubID: "hub-1", ReceivedMs: 1696248400100 + int64(i),
		}
		entries[i] = en.Encode()
	}
	blk := Seal(Header{Network: net, Height: 0, MintTimeMs: 1696248401000, HistoryRoot: Root(nil)}, entries, nil, master)
	x := Expect{Network: net, Height: 0, HistoryRoot: Root(nil), MasterKey: master.Public().(ed25519.PublicKey),
		Hubs: []HubInfo{{ID: "hub-1"}}, Limits: event.DefaultLimits()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := blk.Check(x); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}
