package index

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

func TestFileFor(t *testing.T) {
	for _, tt := range []struct {
		path   string
		height uint64
		want   string
	}{
		{"/d/index.db", 0, "/d/index.db"},
		{"/d/index.db", 1, "/d/index-1.db"},
		{"/d/index.db", 6, "/d/index.db"},
		{"/d/index.db", 7, "/d/index-1.db"},
		{"/d/index", 3, "/d/index-1"},
	} {
		if got := FileFor(tt.path, tt.height); got != tt.want {
			t.Errorf("FileFor(%q, %d) = %q, want %q", tt.path, tt.height, got, tt.want)
		}
	}
}

// heightsIn returns the block heights the file holds.
func heightsIn(t *testing.T, file string) []uint64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Query(`SELECT height FROM blocks ORDER BY height`)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var hs []uint64
	for res.Next() {
		var h uint64
		if err := res.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs
}

// Each file holds the blocks of its heights and their events, and a search
// finds the events of both in one order.
func TestShardsHoldAlternateBlocks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.AddBlocks(ctx, testBlocks(0, 2, 3, 1, 4, 2)); err != nil {
		t.Fatal(err)
	}
	if got := heightsIn(t, path); !slices.Equal(got, []uint64{0, 2, 4}) {
		t.Errorf("%s holds blocks %v, want [0 2 4]", path, got)
	}
	if got := heightsIn(t, FileFor(path, 1)); !slices.Equal(got, []uint64{1, 3}) {
		t.Errorf("%s holds blocks %v, want [1 3]", FileFor(path, 1), got)
	}
	refs, next, err := x.Search(ctx, Query{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range refs {
		got = append(got, r.Cursor())
	}
	// Block 4 holds 2 events, block 3 four.
	if want := []string{"4.1", "4.0", "3.3", "3.2", "3.1"}; !slices.Equal(got, want) || next != "3.1" {
		t.Fatalf("first page = %v, next %q; want %v, next 3.1", got, next, want)
	}
}

// An AddBlocks that one shard committed and the other did not leaves
// Height at the lowest missing block; adding from there again skips what
// the first shard holds, and refuses it if it holds another block there.
func TestAddBlocksAfterOneShardFailed(t *testing.T) {
	ctx := context.Background()
	x := openTest(t)
	blocks := testBlocks(0, 2, 3, 1, 4, 2, 5)
	if err := x.AddBlocks(ctx, blocks[:2]); err != nil {
		t.Fatal(err)
	}
	// Shard 0 commits blocks 2 and 4; shard 1 never gets 3 and 5.
	if err := x.shards[0].add(ctx, []BlockInput{blocks[2], blocks[4]}); err != nil {
		t.Fatal(err)
	}
	if h, err := x.Height(ctx); err != nil || h != 3 {
		t.Fatalf("Height = %d, %v; want 3", h, err)
	}
	if err := x.AddBlocks(ctx, blocks[2:3]); !errors.Is(err, ErrIndexed) {
		t.Fatalf("block 2 again: err = %v, want ErrIndexed", err)
	}
	// Shard 1 takes block 3; shard 0 has another block 4 than this.
	other := blocks[4]
	other.Hash[0] ^= 1
	if err := x.AddBlocks(ctx, []BlockInput{blocks[3], other}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("another block 4: err = %v, want ErrCorrupt", err)
	}
	if h, err := x.Height(ctx); err != nil || h != 5 {
		t.Fatalf("Height = %d, %v; want 5", h, err)
	}
	if err := x.AddBlocks(ctx, blocks[5:]); err != nil {
		t.Fatal(err)
	}
	if h, err := x.Height(ctx); err != nil || h != 6 {
		t.Fatalf("Height = %d, %v; want 6", h, err)
	}
	if n, err := x.Count(ctx); err != nil || n != 17 {
		t.Fatalf("Count = %d, %v; want 17", n, err)
	}
	var got []Ref
	if err := x.Each(ctx, func(r Ref) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	var want []Ref
	for _, b := range blocks {
		want = append(want, RefsFor(b)...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Each = %v\nwant %v", got, want)
	}
}

// A shard that lost a block below its highest is reported, not skipped.
func TestAddBlocksReportsAHoleInAShard(t *testing.T) {
	ctx := context.Background()
	x := openTest(t)
	blocks := testBlocks(0, 1, 1, 1, 1, 1, 1, 1)
	if err := x.AddBlocks(ctx, blocks[:2]); err != nil {
		t.Fatal(err)
	}
	if err := x.shards[0].add(ctx, []BlockInput{blocks[2], blocks[4], blocks[6]}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.shards[0].db.Exec(`DELETE FROM blocks WHERE height = 4`); err != nil {
		t.Fatal(err)
	}
	if err := x.AddBlocks(ctx, blocks[3:]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

// AddShard takes one shard's blocks while the other shard lags: the
// index's height waits for the lagging shard, ShardHeight does not, and
// blocks that are not the shard's next are refused without a write.
func TestAddShardGoesAheadOfTheOtherShard(t *testing.T) {
	ctx := context.Background()
	x := openTest(t)
	blocks := testBlocks(0, 2, 3, 1, 4, 2, 5, 1)
	if err := x.AddShard(ctx, 0, []BlockInput{blocks[0], blocks[2], blocks[4]}); err != nil {
		t.Fatal(err)
	}
	if h, err := x.ShardHeight(ctx, 0); err != nil || h != 6 {
		t.Fatalf("ShardHeight(0) = %d, %v; want 6", h, err)
	}
	if h, err := x.ShardHeight(ctx, 1); err != nil || h != 1 {
		t.Fatalf("ShardHeight(1) = %d, %v; want 1", h, err)
	}
	if h, err := x.Height(ctx); err != nil || h != 1 {
		t.Fatalf("Height = %d, %v; want 1", h, err)
	}
	bad := blocks[5]
	bad.Raw = bad.Raw[1:]
	for name, in := range map[string]struct {
		k      int
		blocks []BlockInput
	}{
		"another shard's block":  {1, []BlockInput{blocks[2]}},
		"a block skipped":        {1, []BlockInput{blocks[1], blocks[5]}},
		"a gap before the first": {1, []BlockInput{blocks[3]}},
		"heights out of order":   {1, []BlockInput{blocks[3], blocks[1]}},
		"entries not their raw":  {1, []BlockInput{blocks[1], blocks[3], bad}},
		"no such shard":          {Shards, []BlockInput{blocks[1]}},
	} {
		if err := x.AddShard(ctx, in.k, in.blocks); err == nil {
			t.Errorf("%s: no error", name)
		}
		if h, err := x.ShardHeight(ctx, 1); err != nil || h != 1 {
			t.Fatalf("%s: ShardHeight(1) = %d, %v; want 1", name, h, err)
		}
	}
	if err := x.AddShard(ctx, 1, []BlockInput{blocks[1], blocks[3]}); err != nil {
		t.Fatal(err)
	}
	if h, err := x.Height(ctx); err != nil || h != 5 {
		t.Fatalf("Height = %d, %v; want 5", h, err)
	}
	// Blocks the shard holds are skipped; with another hash, refused.
	if err := x.AddShard(ctx, 0, []BlockInput{blocks[4], blocks[6]}); err != nil {
		t.Fatal(err)
	}
	other := blocks[3]
	other.Hash[0] ^= 1
	if err := x.AddShard(ctx, 1, []BlockInput{other, blocks[5]}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("another block 3: err = %v, want ErrCorrupt", err)
	}
	if err := x.AddShard(ctx, 1, []BlockInput{blocks[5]}); err != nil {
		t.Fatal(err)
	}
	if h, err := x.Height(ctx); err != nil || h != 7 {
		t.Fatalf("Height = %d, %v; want 7", h, err)
	}
	if n, err := x.Count(ctx); err != nil || n != 18 {
		t.Fatalf("Count = %d, %v; want 18", n, err)
	}
}
