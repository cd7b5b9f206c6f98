package index

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"

	"cissan/internal/chain"
	"cissan/internal/event"
)

// BlockInput is one block to index.
type BlockInput struct {
	Height     uint64
	Hash       chain.Hash
	MintTimeMs int64
	Entries    []*event.Entry // decoded
	Raw        [][]byte       // entry bytes, same order
}

// Row is what a search shows of one event: its place in the chain and the
// fields of its entry. The index keeps only the place and the timestamp
// (Ref); RowOf derives the rest from the entry.
type Row struct {
	UID        string
	DeviceUID  string
	Namespace  string
	Timestamp  int64 // event timestamp, ms
	ReceivedMs int64
	HubID      string
	Height     uint64
	Index      uint32     // entry index in block
	Digest     chain.Hash // SHA-256(entry bytes)
	Keys       []string   // item keys, in event order; nil if none
	Tags       []string   // "analyzer:key:label" per tag, in entry order; nil if none
	MintTimeMs int64
}

// Cursor returns the row's position as a Query cursor: the next page
// starts just below it.
func (r *Row) Cursor() string { return formatCursor(r.Height, r.Index) }

// TagString is the form of a tag in Row.Tags.
func TagString(t event.Tag) string { return t.Analyzer + ":" + t.Key + ":" + t.Label }

// RowOf derives the row of entry idx of block height, given the block's
// mint time, the entry bytes and the entry they decode to.
func RowOf(height uint64, idx uint32, mintTimeMs int64, raw []byte, en *event.Entry) Row {
	ev := &en.Event
	r := Row{
		UID: ev.UID, DeviceUID: ev.DeviceUID, Namespace: ev.Namespace, Timestamp: ev.Timestamp,
		ReceivedMs: en.ReceivedMs, HubID: en.HubID,
		Height: height, Index: idx, Digest: event.Digest(raw), MintTimeMs: mintTimeMs,
	}
	if len(ev.Items) > 0 {
		r.Keys = make([]string, len(ev.Items))
		for j, it := range ev.Items {
			r.Keys[j] = it.Key
		}
	}
	if len(en.Tags) > 0 {
		r.Tags = make([]string, len(en.Tags))
		for j, t := range en.Tags {
			r.Tags[j] = TagString(t)
		}
	}
	return r
}

// Ref is what the index keeps of one event: where it is in the chain, and
// the timestamp that time ranges filter on.
type Ref struct {
	Height    uint64
	Index     uint32
	Timestamp int64
}

// Cursor returns the ref's position as a Query cursor.
func (r Ref) Cursor() string { return formatCursor(r.Height, r.Index) }

// RefsFor derives the refs a block must produce: AddBlocks stores exactly
// these, and verify compares the stored refs against them.
func RefsFor(b BlockInput) []Ref {
	refs := make([]Ref, len(b.Entries))
	for i, en := range b.Entries {
		refs[i] = Ref{Height: b.Height, Index: uint32(i)}
		if en != nil {
			refs[i].Timestamp = en.Event.Timestamp
		}
	}
	return refs
}

// BlockRowFor derives the blocks row of b. Its Tagged is -1 if an entry
// is missing (nil): the count is then unknown.
func BlockRowFor(b BlockInput) BlockRow {
	row := BlockRow{Height: b.Height, Hash: b.Hash, MintTimeMs: b.MintTimeMs, EntryCount: len(b.Entries)}
	for _, en := range b.Entries {
		switch {
		case en == nil:
			row.Tagged = -1
			return row
		case len(en.Tags) > 0:
			row.Tagged++
		}
	}
	return row
}

// rowID is an event's row id; see the package doc.
func rowID(height uint64, idx uint32) int64 { return int64(height<<32 | uint64(idx)) }

func splitID(id int64) (uint64, uint32) { return uint64(id) >> 32, uint32(id) }

// checkInput refuses a block whose decoded entries are not its entry
// bytes: stored rows would then not be derivable from the chain.
func checkInput(b *BlockInput, buf []byte) ([]byte, error) {
	if b.Height > MaxHeight {
		return buf, fmt.Errorf("height above %d", MaxHeight)
	}
	if len(b.Entries) != len(b.Raw) {
		return buf, fmt.Errorf("%d decoded entries but %d raw", len(b.Entries), len(b.Raw))
	}
	if uint64(len(b.Entries)) > math.MaxUint32 {
		return buf, fmt.Errorf("%d entries, too many", len(b.Entries))
	}
	for i, en := range b.Entries {
		if en == nil {
			return buf, fmt.Errorf("entry %d is nil", i)
		}
		buf = en.AppendEncode(buf[:0])
		if !bytes.Equal(buf, b.Raw[i]) {
			return buf, fmt.Errorf("entry %d does not encode to its raw bytes", i)
		}
	}
	return buf, nil
}

// AddBlocks indexes blocks, one transaction per shard, the shards at
// once. Heights must be consecutive from Height(); a block below it
// returns an error wrapping ErrIndexed, one above it an error wrapping
// ErrGap. A block whose decoded entries are not its entry bytes writes
// nothing. If one shard fails and another commits, Height stays at the
// lowest height missing, and adding the blocks from there again skips
// those the shard holds.
func (x *Index) AddBlocks(ctx context.Context, blocks []BlockInput) error {
	if len(blocks) == 0 {
		return nil
	}
	var parts [Shards][]BlockInput
	for i := range blocks {
		k := blocks[i].Height % Shards
		parts[k] = append(parts[k], blocks[i])
	}
	err := x.eachShard(func(s *shard) error { return checkInputs(parts[s.k]) })
	if err != nil {
		return err
	}

	x.addMu.Lock()
	defer x.addMu.Unlock()
	next, err := x.Height(ctx)
	if err != nil {
		return err
	}
	for i := range blocks {
		want := next + uint64(i)
		switch h := blocks[i].Height; {
		case h < want:
			return fmt.Errorf("index block %d: %w", h, ErrIndexed)
		case h > want:
			return fmt.Errorf("index block %d: %w: next height is %d", h, ErrGap, want)
		}
	}
	return x.eachShard(func(s *shard) error {
		if len(parts[s.k]) == 0 {
			return nil
		}
		return s.add(ctx, parts[s.k])
	})
}

// AddShard indexes blocks of shard k alone, in one transaction: heights
// h with h % Shards == k, each Shards above the one before, from
// ShardHeight(k) on. Blocks below it that the shard holds with the same
// hash are skipped; a first height above it returns an error wrapping
// ErrGap. Shards take blocks independently: the index's Height is the
// lowest height some shard lacks, so a shard ahead of the others adds
// nothing to it until they catch up.
func (x *Index) AddShard(ctx context.Context, k int, blocks []BlockInput) error {
	if k < 0 || k >= Shards {
		return fmt.Errorf("index shard %d: there are %d", k, Shards)
	}
	for i := range blocks {
		h := blocks[i].Height
		if h%Shards != uint64(k) || (i > 0 && h != blocks[i-1].Height+Shards) {
			return fmt.Errorf("index block %d: %w: not the next block of shard %d", h, ErrGap, k)
		}
	}
	if len(blocks) == 0 {
		return nil
	}
	if err := checkInputs(blocks); err != nil {
		return err
	}
	return x.shards[k].add(ctx, blocks)
}

// ShardHeight returns the next height shard k takes.
func (x *Index) ShardHeight(ctx context.Context, k int) (uint64, error) {
	if k < 0 || k >= Shards {
		return 0, fmt.Errorf("index shard %d: there are %d", k, Shards)
	}
	s := x.shards[k]
	return s.next(ctx, s.db)
}

// checkInputs runs checkInput on each block.
func checkInputs(blocks []BlockInput) error {
	var buf []byte
	var err error
	for i := range blocks {
		if buf, err = checkInput(&blocks[i], buf); err != nil {
			return fmt.Errorf("index block %d: %w", blocks[i].Height, err)
		}
	}
	return nil
}

// writer fills the tables of one AddBlocks transaction through multi-row
// inserts.
type writer struct {
	blocks, events, text *batch
	txt                  []byte // textOf's scratch
	tb                   []byte // termsOf's scratch
}

// textRows is the rows of one insert into event_text. FTS5 writes what a
// statement added as a new segment when the statement ends, and merges
// segments sixteen at a time (see Open), so the rows per statement set how
// often each token is rewritten: at 2,000 an event's tokens go through one
// merge level fewer than at 200, for about a tenth less time indexing an
// event (BenchmarkAddBlocks). Statements of 10,000 rows were slower than
// 2,000, with FTS5's default 1 MiB of pending terms or with 16 MiB.
const textRows = 2000

func newWriter(tx *sql.Tx) *writer {
	return &writer{
		blocks: newBatch(tx, "blocks(height, hash, mint_time_ms, entry_count, tagged)", 5, 64),
		events: newBatch(tx, "events(id, ts)", 2, 200),
		text:   newBatch(tx, "event_text(rowid, body, terms)", 3, textRows),
	}
}

func (w *writer) all() []*batch { return []*batch{w.blocks, w.events, w.text} }

func (w *writer) close() {
	for _, b := range w.all() {
		b.close()
	}
}

func (w *writer) flush(ctx context.Context) error {
	for _, b := range w.all() {
		if err := b.flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) block(ctx context.Context, b *BlockInput) error {
	br := BlockRowFor(*b)
	if err := w.blocks.add(ctx, int64(br.Height), br.Hash[:], br.MintTimeMs, br.EntryCount, br.Tagged); err != nil {
		return err
	}
	for i, en := range b.Entries {
		id := rowID(b.Height, uint32(i))
		if err := w.events.add(ctx, id, en.Event.Timestamp); err != nil {
			return err
		}
		if err := w.text.add(ctx, id, w.textOf(&en.Event), w.termsOf(en)); err != nil {
			return err
		}
	}
	return nil
}

// termsOf is the terms column of event_text: one token for the device,
// one for the namespace, one per item key and two per tag (label, and
// analyzer:label), each a letter naming its kind and then the value
// spelled so that the tokenizer keeps it whole and exact (appendTerm). A
// token that comes twice (two tags of one label) does no harm.
//
// Exact-match filters ride the full-text index because FTS5 takes tokens
// into an in-memory table and writes them out sorted, many events at a
// time, where a B-tree of (device, id) pairs takes each insert at a
// random page: with the device and namespace B-trees gone, indexing an
// event costs about a quarter less (BenchmarkAddBlocks), and a filter
// still streams in rowid order.
func (w *writer) termsOf(en *event.Entry) string {
	b := appendTerm(w.tb[:0], 'd', en.Event.DeviceUID)
	b = appendTerm(append(b, ' '), 'n', en.Event.Namespace)
	for _, it := range en.Event.Items {
		b = appendTerm(append(b, ' '), 'k', it.Key)
	}
	for _, t := range en.Tags {
		b = appendTerm(append(b, ' '), 't', t.Label)
		b = appendTerm(append(b, ' '), 't', t.Analyzer, ":", t.Label)
	}
	w.tb = b
	return string(b)
}

// appendTerm appends the token of kind for the concatenated parts: bytes
// a-y and 0-9 as they are, every other byte as 'z' and its two hex digits.
// The tokenizer keeps such a token whole and does not fold it, and the
// spelling is one-to-one ('z' always starts an escape). Version 4 wrote
// every byte in hex: twice the characters for the tokenizer to read, and
// it was 7% of the cost of indexing an event.
func appendTerm(dst []byte, kind byte, parts ...string) []byte {
	const digits = "0123456789abcdef"
	dst = append(dst, kind)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case 'a' <= c && c <= 'y', '0' <= c && c <= '9':
				dst = append(dst, c)
			default:
				dst = append(dst, 'z', digits[c>>4], digits[c&15])
			}
		}
	}
	return dst
}

// term is the token of kind for s, as a query names it.
func term(kind byte, s string) string { return string(appendTerm(nil, kind, s)) }

// textOf is the text indexed for full-text search: item keys, string
// values and numbers, space separated. Bools are left out: "true" would
// match most events and help no one. It builds the text in one buffer
// that the writer keeps, for one allocation per event rather than one per
// number as well (a third of the index's allocations, BenchmarkAddBlocks).
func (w *writer) textOf(ev *event.Event) string {
	b := w.txt[:0]
	for _, it := range ev.Items {
		b = appendValueText(appendWord(b, it.Key), it.Value)
	}
	w.txt = b
	return string(b)
}

// appendWord appends s to the text b, after a space unless b is empty.
func appendWord(b []byte, s string) []byte {
	if len(b) > 0 {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// appendValueText appends the words of v: a number as JSON encoders write
// it (plain decimals, an exponent only for very large or small
// magnitudes), so that a search for "23.5" finds the value a device sent
// as 23.5; a string as it is; an array's elements in order.
func appendValueText(b []byte, v event.Value) []byte {
	switch v.Kind {
	case event.KindNumber:
		if len(b) > 0 {
			b = append(b, ' ')
		}
		format := byte('g')
		if a := math.Abs(v.Num); a == 0 || (a >= 1e-6 && a < 1e21) {
			format = 'f'
		}
		return strconv.AppendFloat(b, v.Num, format, -1, 64)
	case event.KindString:
		return appendWord(b, v.Str)
	case event.KindArray:
		for _, el := range v.Array {
			b = appendValueText(b, el)
		}
	}
	return b
}

// batch collects rows for one table and inserts them many per statement:
// one prepared statement for full batches, and one more for the rest.
type batch struct {
	tx     *sql.Tx
	target string // "table(col, ...)"
	cols   int
	rows   int // rows per full statement
	full   *sql.Stmt
	args   []any
}

func newBatch(tx *sql.Tx, target string, cols, rows int) *batch {
	return &batch{tx: tx, target: target, cols: cols, rows: rows, args: make([]any, 0, cols*rows)}
}

func (b *batch) insertSQL(rows int) string {
	one := "(?" + strings.Repeat(", ?", b.cols-1) + ")"
	return "INSERT INTO " + b.target + " VALUES " + one + strings.Repeat(", "+one, rows-1)
}

func (b *batch) add(ctx context.Context, vals ...any) error {
	b.args = append(b.args, vals...)
	if len(b.args) < b.cols*b.rows {
		return nil
	}
	if b.full == nil {
		st, err := b.tx.PrepareContext(ctx, b.insertSQL(b.rows))
		if err != nil {
			return fmt.Errorf("prepare insert %s: %w", b.target, err)
		}
		b.full = st
	}
	if _, err := b.full.ExecContext(ctx, b.args...); err != nil {
		return fmt.Errorf("insert %s: %w", b.target, err)
	}
	clear(b.args) // drop references to the rows' strings
	b.args = b.args[:0]
	return nil
}

func (b *batch) flush(ctx context.Context) error {
	if len(b.args) == 0 {
		return nil
	}
	if _, err := b.tx.ExecContext(ctx, b.insertSQL(len(b.args)/b.cols), b.args...); err != nil {
		return fmt.Errorf("insert %s: %w", b.target, err)
	}
	b.args = b.args[:0]
	return nil
}

func (b *batch) close() {
	if b.full != nil {
		b.full.Close()
	}
}
