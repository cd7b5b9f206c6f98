package index

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkSearch times one page of each query shape over an index of a
// million events (100 blocks of benchBlock: 5,000 devices, 20 namespaces).
func BenchmarkSearch(b *testing.B) {
	const blocks, perBlock = 100, 10_000
	ctx := context.Background()
	x, err := Open(filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	for h := range blocks {
		if err := x.AddBlocks(ctx, []BlockInput{benchBlock(h, perBlock)}); err != nil {
			b.Fatal(err)
		}
	}
	last := benchBlock(blocks-1, perBlock).Entries[perBlock-1].Event
	for _, c := range []struct {
		name string
		q    Query
	}{
		{"newest", Query{}},
		{"device", Query{DeviceUID: last.DeviceUID}},
		{"namespace", Query{Namespace: last.Namespace}},
		{"namespaces", Query{Namespaces: []string{"org1/site3", "org2/site4", "org3/site5"}}},
		{"namespace and device", Query{Namespace: last.Namespace, DeviceUID: last.DeviceUID}},
		{"time", Query{From: last.Timestamp - 600_000, To: last.Timestamp - 300_000}},
		{"device and time", Query{DeviceUID: last.DeviceUID, From: last.Timestamp - 2_000_000}},
		{"text", Query{Text: "temperature"}},
		{"namespace deep", Query{Namespace: last.Namespace, Cursor: "10.0"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				rows, _, err := x.Search(ctx, c.q)
				if err != nil {
					b.Fatal(err)
				}
				n = len(rows)
			}
			b.ReportMetric(float64(n), "rows")
		})
	}
}
