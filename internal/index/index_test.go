package index

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"cissan/internal/event"
)

var devices = []struct{ uid, ns string }{
	{"dev-a", "acme/plant1"},
	{"dev-b", "acme/plant2"},
	{"dev-c", "beta/lab"},
	{"dev-d", "acme/plant1"},
}

// testEntry builds the j-th event of the fixture. Its fields vary with j so
// that every filter selects a different, non-trivial subset.
func testEntry(j int) *event.Entry {
	d := devices[j%len(devices)]
	status := "ok"
	if j%4 == 3 {
		status = "Overheat alarm"
	}
	items := []event.Item{
		{Key: "temperature", Value: event.Value{Kind: event.KindNumber, Num: 20 + float64(j)*0.5}},
		{Key: "status", Value: event.Value{Kind: event.KindString, Str: status}},
		{Key: "readings", Value: event.Value{Kind: event.KindArray, Array: []event.Value{
			{Kind: event.KindNumber, Num: float64(j % 7)},
			{Kind: event.KindString, Str: fmt.Sprintf("r%d", j%3)},
			{Kind: event.KindBool, Bool: true},
		}}},
	}
	if j%5 == 0 {
		items = append(items, event.Item{Key: "sensor/humidity", Value: event.Value{Kind: event.KindNumber, Num: 41.25}})
	}
	if j%6 == 0 {
		items = append(items, event.Item{Key: "door open", Value: event.Value{Kind: event.KindBool, Bool: j%12 == 0}})
	}
	var tags []event.Tag
	if j%3 == 0 {
		tags = append(tags, event.Tag{Analyzer: "range", Key: "temperature", Label: "out_of_range"})
	}
	if j%5 == 2 {
		tags = append(tags, event.Tag{Analyzer: "iforest", Label: "anomaly", Score: 730_000})
	}
	if j%10 == 9 {
		tags = append(tags, event.Tag{Analyzer: "rules", Key: "status", Label: "anomaly"})
	}
	return &event.Entry{
		Event: event.Event{
			UID: fmt.Sprintf("ev-%04d", j),
			// Not monotonic in j, so time order differs from chain order.
			Timestamp: 1_700_000_000_000 + int64((j*7919)%1000)*1000,
			Items:     items,
			Namespace: d.ns,
			DeviceUID: d.uid,
		},
		HubID:      fmt.Sprintf("hub-%d", j%2+1),
		ReceivedMs: 1_700_000_500_000 + int64(j),
		Tags:       tags,
	}
}

// testBlocks builds blocks of the given sizes from height 0, numbering
// events from first.
func testBlocks(first int, sizes ...int) []BlockInput {
	var blocks []BlockInput
	j := first
	for h, n := range sizes {
		b := BlockInput{
			Height:     uint64(h),
			Hash:       sha256.Sum256([]byte(fmt.Sprintf("block %d/%d", first, h))),
			MintTimeMs: 1_700_001_000_000 + int64(h)*1000,
		}
		for range n {
			en := testEntry(j)
			b.Entries = append(b.Entries, en)
			b.Raw = append(b.Raw, en.Encode())
			j++
		}
		blocks = append(blocks, b)
	}
	return blocks
}

// fixtureSizes include an empty block and blocks larger than the insert
// batches, so both the full and the remainder statements run.
var fixtureSizes = []int{3, 0, 7, 2100, 40, 1}

func openTest(t *testing.T) *Index {
	t.Helper()
	x, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// fixture opens an index holding testBlocks(0, fixtureSizes...). It
// returns the rows in (height, index) order and the entries by uid.
func fixture(t *testing.T) (*Index, []Row, map[string]*event.Entry) {
	t.Helper()
	x := openTest(t)
	blocks := testBlocks(0, fixtureSizes...)
	ctx := context.Background()
	// Two calls, to check that heights continue across transactions.
	if err := x.AddBlocks(ctx, blocks[:2]); err != nil {
		t.Fatal(err)
	}
	if err := x.AddBlocks(ctx, blocks[2:]); err != nil {
		t.Fatal(err)
	}
	var rows []Row
	entries := map[string]*event.Entry{}
	for _, b := range blocks {
		for i, en := range b.Entries {
			rows = append(rows, RowOf(b.Height, uint32(i), b.MintTimeMs, b.Raw[i], en))
		}
		for _, en := range b.Entries {
			entries[en.Event.UID] = en
		}
	}
	return x, rows, entries
}

// An index of an older schema is dropped on open, so that the ledger
// indexes the chain again: version 1 had a UNIQUE uid index, version 2
// B-tree indexes on device and namespace, versions 1 to 3 every field of
// an event in its row, and version 4 today's tables in one file, which
// becomes the first of the two.
func TestMigrateOlderVersions(t *testing.T) {
	wide := func(events ...string) []string {
		return append(append([]string{
			`CREATE TABLE blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, mint_time_ms INTEGER NOT NULL, entry_count INTEGER NOT NULL)`,
			`CREATE VIRTUAL TABLE event_text USING fts5(body, terms, content='', columnsize=0)`,
			`INSERT INTO blocks VALUES (0, zeroblob(32), 1, 1)`,
		}, events...), `INSERT INTO events VALUES (0, 'old', 'd', 'n/s', 1, 1, 'hub-1', zeroblob(32), NULL, NULL)`)
	}
	for v, old := range map[int][]string{
		1: wide(`CREATE TABLE events (id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, device_uid TEXT NOT NULL, namespace TEXT NOT NULL,
			ts INTEGER NOT NULL, received_ms INTEGER NOT NULL, hub_id TEXT NOT NULL, digest BLOB NOT NULL, keys TEXT, tags TEXT)`),
		2: wide(`CREATE TABLE events (id INTEGER PRIMARY KEY, uid TEXT NOT NULL, device_uid TEXT NOT NULL, namespace TEXT NOT NULL,
			ts INTEGER NOT NULL, received_ms INTEGER NOT NULL, hub_id TEXT NOT NULL, digest BLOB NOT NULL, keys TEXT, tags TEXT)`,
			`CREATE INDEX events_device ON events(device_uid)`,
			`CREATE INDEX events_namespace ON events(namespace)`,
			`CREATE INDEX events_ts ON events(ts)`),
		3: wide(`CREATE TABLE events (id INTEGER PRIMARY KEY, uid TEXT NOT NULL, device_uid TEXT NOT NULL, namespace TEXT NOT NULL,
			ts INTEGER NOT NULL, received_ms INTEGER NOT NULL, hub_id TEXT NOT NULL, digest BLOB NOT NULL, keys TEXT, tags TEXT)`,
			`CREATE INDEX events_ts ON events(ts)`),
		4: append(slices.Clone(schema),
			`INSERT INTO blocks VALUES (0, zeroblob(32), 1, 1, 0), (1, zeroblob(32), 2, 1, 0)`,
			`INSERT INTO events VALUES (0, 1), (4294967296, 2)`),
	} {
		t.Run(fmt.Sprint("version ", v), func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "index.db")
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range append(old, fmt.Sprintf(`PRAGMA user_version = %d`, v)) {
				if _, err := db.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			x, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			if h, err := x.Height(ctx); err != nil || h != 0 {
				t.Fatalf("after migration: Height = %d, %v; want 0", h, err)
			}
			if n, err := x.Count(ctx); err != nil || n != 0 {
				t.Fatalf("after migration: Count = %d, %v; want 0", n, err)
			}
			if err := x.AddBlocks(ctx, testBlocks(0, 2, 3)); err != nil {
				t.Fatal(err)
			}
			var got int
			if err := x.shards[0].db.QueryRow(`PRAGMA user_version`).Scan(&got); err != nil || got != schemaVersion {
				t.Fatalf("user_version = %d, %v; want %d", got, err, schemaVersion)
			}
			var n int
			if err := x.shards[0].db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name IN ('events_device', 'events_namespace')`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d indexes of version 2 left, %v", n, err)
			}
			if got := heightsIn(t, FileFor(path, 1)); !slices.Equal(got, []uint64{1}) {
				t.Fatalf("second file holds blocks %v, want [1]", got)
			}
		})
	}
}

func TestRowOf(t *testing.T) {
	en := testEntry(0) // has a number, a string, an array, two extra keys, a tag
	raw := en.Encode()
	want := Row{
		UID: "ev-0000", DeviceUID: "dev-a", Namespace: "acme/plant1",
		Timestamp: 1_700_000_000_000, ReceivedMs: 1_700_000_500_000, HubID: "hub-1",
		Height: 7, Index: 1, Digest: sha256.Sum256(raw),
		Keys:       []string{"temperature", "status", "readings", "sensor/humidity", "door open"},
		Tags:       []string{"range:temperature:out_of_range"},
		MintTimeMs: 99,
	}
	if got := RowOf(7, 1, 99, raw, en); !reflect.DeepEqual(got, want) {
		t.Fatalf("RowOf = %+v\nwant %+v", got, want)
	}
	if got := RowOf(7, 0, 99, testEntry(1).Encode(), testEntry(1)); got.Tags != nil {
		t.Fatalf("untagged entry: Tags = %#v, want nil", got.Tags)
	}
}

func TestRefsAndBlockRowFor(t *testing.T) {
	b := BlockInput{Height: 7, Hash: sha256.Sum256([]byte("b")), MintTimeMs: 99, Entries: []*event.Entry{testEntry(0), testEntry(1), testEntry(3)}}
	want := []Ref{{7, 0, testEntry(0).Event.Timestamp}, {7, 1, testEntry(1).Event.Timestamp}, {7, 2, testEntry(3).Event.Timestamp}}
	if got := RefsFor(b); !reflect.DeepEqual(got, want) {
		t.Fatalf("RefsFor = %+v, want %+v", got, want)
	}
	// Entries 0 and 3 carry tags, entry 1 none.
	if got, want := BlockRowFor(b), (BlockRow{Height: 7, Hash: b.Hash, MintTimeMs: 99, EntryCount: 3, Tagged: 2}); got != want {
		t.Fatalf("BlockRowFor = %+v, want %+v", got, want)
	}
	b.Entries[1] = nil
	if got := BlockRowFor(b); got.Tagged != -1 {
		t.Fatalf("BlockRowFor with an entry missing: Tagged = %d, want -1", got.Tagged)
	}
}

// refTokens approximates FTS5's unicode61 tokenizer for the ASCII text the
// fixture holds: runs of letters and digits, folded to lower case.
func refTokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

func refText(en *event.Entry) []string {
	var w writer
	return refTokens(w.textOf(&en.Event))
}

// refMatch is the Text filter's documented meaning: every word's tokens
// appear as a phrase; words without tokens are ignored; no tokens at all
// match nothing.
func refMatch(doc []string, text string) bool {
	some := false
	for _, w := range strings.Fields(text) {
		p := refTokens(w)
		if len(p) == 0 {
			continue
		}
		some = true
		found := false
		for i := 0; i+len(p) <= len(doc); i++ {
			if slices.Equal(doc[i:i+len(p)], p) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return some
}

// refFilter is Search's meaning, written plainly over the fixture.
func refFilter(q Query, r Row, en *event.Entry) bool {
	if q.DeviceUID != "" && r.DeviceUID != q.DeviceUID {
		return false
	}
	if q.Namespace != "" && r.Namespace != q.Namespace {
		return false
	}
	if q.Namespaces != nil && !slices.Contains(q.Namespaces, r.Namespace) {
		return false
	}
	if q.From != 0 && r.Timestamp < q.From || q.To != 0 && r.Timestamp > q.To {
		return false
	}
	if q.Key != "" && !slices.Contains(r.Keys, q.Key) {
		return false
	}
	if q.Tag != "" && !slices.ContainsFunc(en.Tags, func(t event.Tag) bool {
		return t.Label == q.Tag || t.Analyzer+":"+t.Label == q.Tag
	}) {
		return false
	}
	if q.Text != "" && !refMatch(refText(en), q.Text) {
		return false
	}
	return true
}

// searchAll pages through q and checks that the pages are ordered newest
// first and hold no row twice.
func searchAll(t *testing.T, x *Index, q Query) []Ref {
	t.Helper()
	var all []Ref
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		rows, next, err := x.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		limit := q.Limit
		if limit == 0 {
			limit = DefaultLimit
		}
		limit = min(limit, MaxLimit)
		if len(rows) > limit {
			t.Fatalf("page of %d rows, limit %d", len(rows), limit)
		}
		if next != "" && len(rows) != limit {
			t.Fatalf("short page of %d rows (limit %d) with a next cursor", len(rows), limit)
		}
		for _, r := range rows {
			if seen[r.Cursor()] {
				t.Fatalf("row %s returned twice", r.Cursor())
			}
			seen[r.Cursor()] = true
			if n := len(all); n > 0 && rowID(all[n-1].Height, all[n-1].Index) <= rowID(r.Height, r.Index) {
				t.Fatalf("rows out of order: %d.%d after %d.%d", r.Height, r.Index, all[n-1].Height, all[n-1].Index)
			}
			all = append(all, r)
		}
		if next == "" {
			return all
		}
		q.Cursor = next
	}
}

func TestSearch(t *testing.T) {
	x, rows, entries := fixture(t)
	mid := int64(1_700_000_000_000 + 300_000)
	tests := []struct {
		name string
		q    Query
		min  int // the fixture must select at least this many, so no case is vacuous
	}{
		{"all", Query{}, len(rows)},
		{"device", Query{DeviceUID: "dev-b"}, 50},
		{"namespace", Query{Namespace: "acme/plant1"}, 100},
		{"from", Query{From: mid}, 50},
		{"to", Query{To: mid}, 50},
		{"from to", Query{From: mid, To: mid + 200_000}, 20},
		{"one instant", Query{From: 1_700_000_000_000, To: 1_700_000_000_000}, 1},
		{"key", Query{Key: "sensor/humidity"}, 50},
		{"key with space", Query{Key: "door open"}, 40},
		{"key absent", Query{Key: "pressure"}, 0},
		{"tag label", Query{Tag: "anomaly"}, 50},
		{"tag analyzer:label", Query{Tag: "iforest:anomaly"}, 40},
		{"tag other analyzer", Query{Tag: "rules:anomaly"}, 20},
		{"tag full form is not a label", Query{Tag: "range:temperature:out_of_range"}, 0},
		{"text string value", Query{Text: "overheat"}, 50},
		{"text case", Query{Text: "OVERHEAT Alarm"}, 50},
		{"text key", Query{Text: "humidity"}, 50},
		{"text number", Query{Text: "41.25"}, 50},
		{"text decimal", Query{Text: "20.5"}, 1},
		{"text array string", Query{Text: "r2"}, 50},
		{"text odd", Query{Text: `"foo AND (`}, 0},
		{"text odd matching", Query{Text: `"overheat (`}, 50},
		{"text punctuation only", Query{Text: `( ) " *`}, 0},
		{"text bools not indexed", Query{Text: "true"}, 0},
		{"namespaces", Query{Namespaces: []string{"acme/plant2", "beta/lab"}}, 100},
		{"namespaces repeated", Query{Namespaces: []string{"beta/lab", "acme/plant2", "beta/lab"}}, 100},
		{"namespaces and filters", Query{Namespaces: []string{"acme/plant2", "acme/plant1"}, From: mid, Key: "sensor/humidity"}, 20},
		{"namespaces empty", Query{Namespaces: []string{}}, 0},
		{"namespaces and namespace", Query{Namespaces: []string{"acme/plant2"}, Namespace: "acme/plant1"}, 0},
		{"device and key", Query{DeviceUID: "dev-a", Key: "sensor/humidity"}, 10},
		{"namespace tag text", Query{Namespace: "acme/plant1", Tag: "out_of_range", Text: "alarm"}, 10},
		{"all filters", Query{DeviceUID: "dev-d", Namespaces: []string{"acme/plant1"}, From: 1_700_000_000_000,
			To: mid * 2, Key: "status", Tag: "range:out_of_range", Text: "overheat"}, 5},
	}
	for _, tt := range tests {
		var want []Ref
		for i := len(rows) - 1; i >= 0; i-- {
			if refFilter(tt.q, rows[i], entries[rows[i].UID]) {
				want = append(want, refOf(rows[i]))
			}
		}
		if len(want) < tt.min {
			t.Fatalf("%s: fixture selects %d rows, test wants at least %d", tt.name, len(want), tt.min)
		}
		// The default page, the largest (MaxLimit+1 is clamped), and pages
		// small enough that there are about eight of them.
		for _, limit := range []int{0, MaxLimit + 1, max(1, len(want)/8)} {
			t.Run(fmt.Sprintf("%s/limit=%d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Limit = limit
				got := searchAll(t, x, q)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got %d rows %v\nwant %d rows %v", len(got), got, len(want), want)
				}
			})
		}
	}
}

func refOf(r Row) Ref { return Ref{Height: r.Height, Index: r.Index, Timestamp: r.Timestamp} }

func refsOf(rows []Row) []Ref {
	refs := make([]Ref, len(rows))
	for i, r := range rows {
		refs[i] = refOf(r)
	}
	return refs
}

// TestExactFiltersDoNotConfuseValues: device, namespace and key filters
// match the exact value, whatever bytes it holds: the tokenizer must not
// split or fold the tokens appendTerm writes.
func TestExactFiltersDoNotConfuseValues(t *testing.T) {
	values := []string{"a-b", "az2db", "A", "a", "z", "z7a", "Z", "dev 1", "dev", "1", "été", "x/y", "xz2fy"}
	x := openTest(t)
	b := BlockInput{Height: 0, MintTimeMs: 1}
	for i, v := range values {
		en := testEntry(i)
		en.Event.DeviceUID, en.Event.Namespace = v, "ns/"+v
		en.Event.Items[0].Key = v
		b.Entries = append(b.Entries, en)
		b.Raw = append(b.Raw, en.Encode())
	}
	if err := x.AddBlocks(context.Background(), []BlockInput{b}); err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		for _, q := range []Query{{DeviceUID: v}, {Namespace: "ns/" + v}, {Key: v}} {
			refs := searchAll(t, x, q)
			if len(refs) != 1 || refs[0].Index != uint32(i) {
				t.Errorf("%+v matches %v, want entry %d alone", q, refs, i)
			}
		}
	}
}

func TestSearchOddText(t *testing.T) {
	x, _, _ := fixture(t)
	for _, text := range []string{
		`"foo AND (`, `"`, `""`, `"""`, `*`, `foo*`, `^foo`, `NEAR(a b)`, `a OR b`, `NOT x`,
		`body:foo`, `{body}: x`, `-temperature`, `+`, `a:b:c`, `(((`, `)`, "\x00", "tem\x00perature",
		"\xff\xfe", `'; DROP TABLE events; --`, strings.Repeat("(", 1000), "\t\n ",
	} {
		if _, _, err := x.Search(context.Background(), Query{Text: text}); err != nil {
			t.Errorf("Search(Text: %q): %v", text, err)
		}
	}
}

func TestSearchBadQuery(t *testing.T) {
	x, _, _ := fixture(t)
	for _, q := range []Query{
		{Limit: -1},
		{From: -1},
		{To: -5},
		{From: 20, To: 10},
		{Cursor: "x"},
		{Cursor: "12"},
		{Cursor: "1."},
		{Cursor: ".1"},
		{Cursor: "01.2"},
		{Cursor: "1.02"},
		{Cursor: "+1.2"},
		{Cursor: "-1.2"},
		{Cursor: "1.2.3"},
		{Cursor: " 1.2"},
		{Cursor: "1.4294967296"},
		{Cursor: "2147483648.0"},
		{Cursor: "99999999999999999999.0"},
	} {
		if _, _, err := x.Search(context.Background(), q); !errors.Is(err, ErrBadQuery) {
			t.Errorf("Search(%+v): err = %v, want ErrBadQuery", q, err)
		}
	}
	// A well-formed cursor past the end or before the start is no error.
	for _, c := range []string{"0.0", "2147483647.4294967295"} {
		if _, _, err := x.Search(context.Background(), Query{Cursor: c}); err != nil {
			t.Errorf("Search(Cursor: %q): %v", c, err)
		}
	}
}

func TestHeightAndErrors(t *testing.T) {
	ctx := context.Background()
	x := openTest(t)
	if h, err := x.Height(ctx); err != nil || h != 0 {
		t.Fatalf("empty index: Height = %d, %v; want 0", h, err)
	}
	blocks := testBlocks(0, 2, 3, 0, 4)
	if err := x.AddBlocks(ctx, blocks[:3]); err != nil {
		t.Fatal(err)
	}
	if h, err := x.Height(ctx); err != nil || h != 3 {
		t.Fatalf("Height = %d, %v; want 3", h, err)
	}
	tamper := func(f func(b *BlockInput)) []BlockInput {
		b := blocks[3]
		b.Entries = slices.Clone(b.Entries)
		b.Raw = slices.Clone(b.Raw)
		f(&b)
		return []BlockInput{b}
	}
	tests := []struct {
		name   string
		blocks []BlockInput
		is     error
	}{
		{"re-add last", blocks[2:3], ErrIndexed},
		{"re-add first", blocks[:1], ErrIndexed},
		{"re-add with new", blocks[2:4], ErrIndexed},
		{"gap", tamper(func(b *BlockInput) { b.Height = 4 }), ErrGap},
		{"gap inside batch", []BlockInput{blocks[3], tamper(func(b *BlockInput) { b.Height = 5 })[0]}, ErrGap},
		{"repeat inside batch", []BlockInput{blocks[3], blocks[3]}, ErrIndexed},
		{"raw count", tamper(func(b *BlockInput) { b.Raw = b.Raw[1:] }), nil},
		{"raw differs", tamper(func(b *BlockInput) { b.Raw[1] = append(slices.Clone(b.Raw[1]), 0) }), nil},
		{"nil entry", tamper(func(b *BlockInput) { b.Entries[0] = nil }), nil},
		{"height too large", tamper(func(b *BlockInput) { b.Height = MaxHeight + 1 }), nil},
	}
	for _, tt := range tests {
		err := x.AddBlocks(ctx, tt.blocks)
		if err == nil || tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.is)
		}
	}
	// Nothing of the refused batches was written.
	if h, err := x.Height(ctx); err != nil || h != 3 {
		t.Fatalf("after refused batches: Height = %d, %v; want 3", h, err)
	}
	if n, err := x.Count(ctx); err != nil || n != 5 {
		t.Fatalf("after refused batches: Count = %d, %v; want 5", n, err)
	}
	if err := x.AddBlocks(ctx, blocks[3:]); err != nil {
		t.Fatal(err)
	}
	if err := x.AddBlocks(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if h, err := x.Height(ctx); err != nil || h != 4 {
		t.Fatalf("Height = %d, %v; want 4", h, err)
	}
}

func TestEachAndReset(t *testing.T) {
	ctx := context.Background()
	x, rows, _ := fixture(t)
	refs := refsOf(rows)
	each := func() []Ref {
		var got []Ref
		if err := x.Each(ctx, func(r Ref) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := each(); !reflect.DeepEqual(got, refs) {
		t.Fatalf("Each gave %d rows %v\nwant %d rows", len(got), got, len(refs))
	}
	stop := errors.New("stop")
	n := 0
	if err := x.Each(ctx, func(Ref) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Each with failing fn: err = %v after %d calls, want stop after 1", err, n)
	}
	var blocks []BlockRow
	if err := x.EachBlock(ctx, func(b BlockRow) error { blocks = append(blocks, b); return nil }); err != nil {
		t.Fatal(err)
	}
	for h, in := range testBlocks(0, fixtureSizes...) {
		want := BlockRowFor(in)
		if h >= len(blocks) || blocks[h] != want {
			t.Fatalf("EachBlock = %+v, want block %d = %+v", blocks, h, want)
		}
	}

	if err := x.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := x.Count(ctx); err != nil || n != 0 {
		t.Fatalf("after Reset: Count = %d, %v", n, err)
	}
	if h, err := x.Height(ctx); err != nil || h != 0 {
		t.Fatalf("after Reset: Height = %d, %v", h, err)
	}
	for _, q := range []Query{{}, {Text: "overheat"}, {Key: "status"}, {Tag: "anomaly"}} {
		if got, _, err := x.Search(ctx, q); err != nil || len(got) != 0 {
			t.Fatalf("after Reset: Search(%+v) = %d rows, %v", q, len(got), err)
		}
	}

	// Re-adding the same chain gives the same index.
	if err := x.AddBlocks(ctx, testBlocks(0, fixtureSizes...)); err != nil {
		t.Fatal(err)
	}
	if got := each(); !reflect.DeepEqual(got, refs) {
		t.Fatalf("after re-add Each gave %d rows, want %d", len(got), len(refs))
	}
	got, _, err := x.Search(ctx, Query{Text: "overheat", Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(searchAll(t, x, Query{Text: "overheat"})); len(got) != n || n == 0 {
		t.Fatalf("after re-add: text search found %d rows, paged %d", len(got), n)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub?dir#x%y.db") // characters SQLite URIs give meaning to
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.AddBlocks(ctx, testBlocks(0, 5)); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if n, err := x.Count(ctx); err != nil || n != 5 {
		t.Fatalf("reopened: Count = %d, %v; want 5", n, err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "index.db")); err == nil {
		t.Fatal("Open in a missing directory: no error")
	}
	if _, err := x.shards[0].db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	x.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("Open of a newer schema: err = %v", err)
	}
}

// Readers run while blocks are added; run with -race.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	x := openTest(t)
	blocks := testBlocks(0, 20, 20, 20, 20, 20, 20)
	done := make(chan error, 1)
	go func() {
		for _, b := range blocks {
			if err := x.AddBlocks(ctx, []BlockInput{b}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		refs, _, err := x.Search(ctx, Query{Text: "overheat", Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		// A reader sees whole blocks: every row it finds is of a block
		// whose row is there too.
		h, err := x.Height(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range refs {
			if r.Height >= h {
				t.Fatalf("row %s found, but only %d blocks indexed", r.Cursor(), h)
			}
		}
	}
	if n, err := x.Count(ctx); err != nil || n != 120 {
		t.Fatalf("Count = %d, %v; want 120", n, err)
	}
}

// A damaged row is reported, not returned as if it were what was indexed.
func TestCorruptRow(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct{ name, sql string }{
		{"ts text", `UPDATE events SET ts = 'soon' WHERE id = 1`},
		{"ts fraction", `UPDATE events SET ts = 1.5 WHERE id = 1`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := openTest(t)
			if err := x.AddBlocks(ctx, testBlocks(0, 3)); err != nil {
				t.Fatal(err)
			}
			if _, err := x.shards[0].db.Exec(tt.sql); err != nil {
				t.Fatal(err)
			}
			if _, _, err := x.Search(ctx, Query{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Search: err = %v, want ErrCorrupt", err)
			}
			if err := x.Each(ctx, func(Ref) error { return nil }); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Each: err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestPlans checks that SQLite runs each query shape in rowid order, so
// that a page costs about a page of rows rather than a sort of every match.
func TestPlans(t *testing.T) {
	x, _, _ := fixture(t)
	for _, q := range []Query{
		{},
		{Cursor: "3.5"},
		{DeviceUID: "dev-a", Cursor: "3.5"},
		{Namespace: "acme/plant1"},
		{Namespaces: []string{"acme/plant1"}},
		{Namespaces: []string{"acme/plant1", "beta/lab", "acme/plant1"}, Cursor: "3.5", From: 1},
		{Key: "status", Cursor: "3.5"},
		{Tag: "anomaly", DeviceUID: "dev-a", Namespaces: []string{"acme/plant1", "beta/lab"}},
		{Text: "overheat alarm", Key: "status", To: 5},
		{DeviceUID: "dev-d", Namespaces: []string{"acme/plant1"}, From: 1, To: 2, Key: "status", Tag: "anomaly", Text: "overheat"},
	} {
		stmt, args, _, err := searchSQL(q)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := x.shards[0].db.Query("EXPLAIN QUERY PLAN "+stmt, args...)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("query %+v sorts its matches: %s", q, p)
		}
		fts := q.DeviceUID != "" || q.Namespace != "" || q.Namespaces != nil || q.Key != "" || q.Tag != "" || q.Text != ""
		if fts && !strings.HasPrefix(p, "SCAN event_text") {
			t.Errorf("query %+v does not stream from the full-text index: %s", q, p)
		}
	}
}

// benchBlock is block h of perBlock entries shaped like a fleet's: random
// uids, thousands of devices, a few dozen namespaces.
func benchBlock(h, perBlock int) BlockInput {
	b := testBlocks(h*perBlock, perBlock)[0]
	b.Height = uint64(h)
	for i, en := range b.Entries {
		j := h*perBlock + i
		sum := sha256.Sum256([]byte(strconv.Itoa(j)))
		en.Event.UID = hex.EncodeToString(sum[:16])
		en.Event.DeviceUID = fmt.Sprintf("dev-%05d", (j*7919)%5000)
		// Device clocks roughly agree: time follows chain order, with jitter.
		en.Event.Timestamp = 1_700_000_000_000 + int64(j)*5 + int64((j*7919)%1000)
		en.Event.Namespace = fmt.Sprintf("org%d/site%d", j%4, j%10)
		b.Raw[i] = en.Encode()
	}
	return b
}

func BenchmarkAddBlocks(b *testing.B) {
	const perBlock = 10_000 // live blocks hold 10,000-30,000 entries
	ctx := context.Background()
	x, err := Open(filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	// The slowest block shows merges that FTS5 does all at once; see Open.
	var slowest time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		blk := benchBlock(i, perBlock)
		b.StartTimer()
		start := time.Now()
		if err := x.AddBlocks(ctx, []BlockInput{blk}); err != nil {
			b.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
	}
	b.StopTimer()
	events := float64(b.N * perBlock)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(slowest.Microseconds())/1000, "slowest-block-ms")
	var bytes int64
	for _, s := range x.shards {
		var pages, size int64
		if err := s.db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
			b.Fatal(err)
		}
		if err := s.db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
			b.Fatal(err)
		}
		bytes += pages * size
	}
	b.ReportMetric(float64(bytes)/events, "disk-B/event")
}
