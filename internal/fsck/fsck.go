// Package fsck re-checks a node's stored chain from scratch, trusting
// nothing but network.json: every header, link, history root, master
// signature, entries root, entry, uid record, validation and index row.
// It names each thing that is wrong rather than stopping at the first, so
// an auditor sees the extent of any tampering.
package fsck

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"cissan/internal/analyze"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/index"
	"cissan/internal/ledger"
	"cissan/internal/store"
)

// Problem is one thing found wrong.
type Problem struct {
	Node string
	What string
}

func (p Problem) String() string { return p.Node + ": " + p.What }

// Report is the outcome of checking one node.
type Report struct {
	Node     string
	Blocks   uint64
	Entries  int
	Hashes   []chain.Hash // block hashes as stored, for cross-node comparison
	Problems []Problem
	// NotFinal lists blocks whose stored accepting validations fall short
	// of the quorum. The newest blocks of a node stopped mid-stream are
	// legitimately so; an older one may mean a validation was deleted.
	NotFinal []uint64
}

func (r *Report) add(format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Node: r.Node, What: fmt.Sprintf(format, args...)})
}

// Check verifies one node's store and index against the network.
func Check(ctx context.Context, node string, st *store.Store, idx *index.Index, net *chain.Network, lim event.Limits) (*Report, error) {
	r := &Report{Node: node}
	height, err := st.Height()
	if err != nil {
		return nil, err
	}
	r.Blocks = height

	rows := make(chan index.Ref, 1024)
	rowErr := make(chan error, 1)
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(rows)
		rowErr <- idx.Each(ictx, func(row index.Ref) error {
			select {
			case rows <- row:
				return nil
			case <-ictx.Done():
				return ictx.Err()
			}
		})
	}()
	var pending *index.Ref // an index row read ahead of the block it belongs to
	nextRow := func() *index.Ref {
		if pending != nil {
			p := pending
			pending = nil
			return p
		}
		row, ok := <-rows
		if !ok {
			return nil
		}
		return &row
	}

	hist := chain.NewHistory()
	var prev chain.Hash
	var an analyze.Set                              // the analyzers in force, replayed from the chain
	logged := map[string]int{}                      // event.ID -> entries that log it
	blockRows := make([]*index.BlockRow, 0, height) // what the index's block rows must be; nil where unreadable
	for h := uint64(0); h < height; h++ {
		blk, err := st.Block(h)
		if err != nil {
			r.add("block %d: cannot read: %v", h, err)
			r.Hashes = append(r.Hashes, chain.Hash{})
			blockRows = append(blockRows, nil)
			hist.Append(chain.Hash{})
			continue
		}
		hash := blk.Header.Hash()
		r.Hashes = append(r.Hashes, hash)
		x := chain.Expect{Network: net.ID, Height: h, Prev: prev, HistoryRoot: hist.Root(), MasterKey: net.MasterKey, Hubs: net.Hubs, Limits: lim}
		// Hubs the block enrols count from the next block on (their
		// from_height), so the network can move on at once.
		if next, err := ledger.NextNetwork(net, h, blk.Controls); err != nil {
			r.add("block %d: %v", h, err)
		} else {
			net = next
		}
		r.checkBlock(blk, x)
		entries := decodeAll(r, blk, lim)
		for _, en := range entries {
			if en != nil {
				logged[en.Event.ID()]++
			}
		}
		an = r.checkTags(an, blk, hash, entries)
		r.Entries += len(blk.Entries)
		r.checkUIDs(st, h, entries, lim)
		r.checkChunkRoots(st, blk)
		r.checkValidations(st, net, h, hash)

		in := index.BlockInput{Height: h, Hash: hash, MintTimeMs: blk.Header.MintTimeMs, Entries: entries}
		br := index.BlockRowFor(in)
		blockRows = append(blockRows, &br)
		want := index.RefsFor(in)
		got := map[uint32]index.Ref{}
		for {
			row := nextRow()
			if row == nil {
				break
			}
			if row.Height > h {
				pending = row
				break
			}
			if row.Height < h {
				r.add("index: row at block %d entry %d has no block", row.Height, row.Index)
				continue
			}
			got[row.Index] = *row
		}
		r.compareRows(h, entries, want, got)
		prev = hash
		hist.Append(hash)
	}
	for row := nextRow(); row != nil; row = nextRow() {
		r.add("index: row at block %d entry %d is beyond the chain (height %d)", row.Height, row.Index, height)
	}
	if err := <-rowErr; err != nil {
		r.add("index: cannot read rows: %v", err)
	}
	r.checkBlockRows(ctx, idx, blockRows)
	r.checkPool(st, lim)
	r.checkRecords(st, height, logged, node == "master")
	return r, nil
}

// checkRecords accounts for every record in the store, so that nothing
// outside the blocks can be slipped in: a uid record no entry explains
// would make a hub acknowledge an event as a retransmit and drop it. It
// also checks that the master's pool and its arrival order agree.
func (r *Report) checkRecords(st *store.Store, height uint64, logged map[string]int, master bool) {
	pool := map[string]bool{}
	ordered := map[string]bool{}
	err := st.EachRecord(func(k, v []byte) error {
		if len(k) == 0 {
			r.add("store: empty key")
			return nil
		}
		switch k[0] {
		case 'b', 'e', 'c', 'v', 'r':
			if len(k) < 9 {
				r.add("store: malformed %q record key %x", k[0], k)
			} else if h := binary.BigEndian.Uint64(k[1:9]); h >= height {
				r.add("store: %q record for block %d, beyond the chain (height %d)", k[0], h, height)
			}
		case 'u':
			id := string(k[1:])
			locs, err := store.DecodeUIDRecord(v)
			switch {
			case logged[id] == 0:
				r.add("store: uid record for %q, which no entry of the chain holds", id)
			case err != nil:
				r.add("store: uid record for %q: %v", id, err)
			case len(locs) != logged[id]:
				r.add("store: uid record for %q lists %d entries; the chain holds %d", id, len(locs), logged[id])
			}
		case 'p':
			pool[string(k[1:])] = true
		case 'q':
			if ordered[string(v)] {
				r.add("pool: %q is queued twice", v)
			}
			ordered[string(v)] = true
		case 'm':
			if name := string(k[1:]); name != "height" && name != "pending-analyzers" && name != "format" {
				r.add("store: unknown metadata %q", name)
			}
		default:
			r.add("store: unknown record key %x", k)
		}
		return nil
	})
	if err != nil {
		r.add("store: cannot read records: %v", err)
		return
	}
	if !master {
		if len(ordered) > 0 {
			r.add("pool: %d arrival-order records on a hub, which keeps none", len(ordered))
		}
		return
	}
	for uid := range ordered {
		if !pool[uid] {
			r.add("pool: arrival-order record for %q without its pool record", uid)
		}
	}
	for uid := range pool {
		if !ordered[uid] {
			r.add("pool: %q has no arrival-order record", uid)
		}
	}
}

// checkTags recomputes every entry's tags with the analyzers the chain puts
// in force, and returns the analyzers for the next block.
func (r *Report) checkTags(an analyze.Set, blk *chain.Block, hash chain.Hash, entries []*event.Entry) analyze.Set {
	h := blk.Header.Height
	next, _, err := ledger.NextAnalyzers(an, blk.Controls)
	if err != nil {
		r.add("block %d: %v", h, err)
		next = an
	}
	for i, en := range entries {
		if en == nil {
			continue
		}
		if want := next.Tags(&en.Event); !analyze.Equal(want, en.Tags) {
			r.add("block %d entry %d (uid %q): analyzer tags are not reproduced", h, i, en.Event.UID)
		}
	}
	var ok []*event.Entry
	for _, en := range entries {
		if en != nil {
			ok = append(ok, en)
		}
	}
	next.Apply(analyze.Block{Height: h, Hash: hash, Entries: ok})
	return next
}

func (r *Report) checkBlock(blk *chain.Block, x chain.Expect) {
	if _, err := blk.Check(x); err != nil {
		r.add("%v", err)
	}
}

// decodeAll decodes each entry, reporting the bad ones; it returns nil
// entries in their place so that rows still line up.
func decodeAll(r *Report, blk *chain.Block, lim event.Limits) []*event.Entry {
	out := make([]*event.Entry, len(blk.Entries))
	for i, raw := range blk.Entries {
		en, err := event.DecodeEntry(raw, lim)
		if err != nil {
			r.add("block %d entry %d: %v", blk.Header.Height, i, err)
			continue
		}
		out[i] = en
	}
	return out
}

// checkChunkRoots requires the chunk roots stored for a block, if any, to
// be its entries': proofs are built from them. Only blocks of more than
// chain.ChunkSize entries have them; a store written before they existed
// has none, and its proofs read the whole block instead.
func (r *Report) checkChunkRoots(st *store.Store, blk *chain.Block) {
	h := blk.Header.Height
	got, err := st.ChunkRoots(h)
	if err != nil {
		r.add("block %d: %v", h, err)
		return
	}
	if len(blk.Entries) <= chain.ChunkSize {
		if got != nil {
			r.add("block %d: chunk roots stored for a block of %d entries", h, len(blk.Entries))
		}
		return
	}
	if got == nil {
		return
	}
	want := chain.ChunkRoots(chain.EntryLeaves(blk.Entries))
	if !slices.Equal(got, want) {
		r.add("block %d: stored chunk roots differ from its entries' (%d stored, %d computed)", h, len(got), len(want))
	}
}

func (r *Report) checkUIDs(st *store.Store, h uint64, entries []*event.Entry, lim event.Limits) {
	for i, en := range entries {
		if en == nil {
			continue
		}
		id := en.Event.ID()
		locs, err := st.Locate(id)
		if errors.Is(err, store.ErrNotFound) {
			r.add("block %d entry %d: uid record for %q: not found", h, i, id)
			continue
		}
		if err != nil {
			r.add("block %d entry %d: %v", h, i, err) // names the uid
			continue
		}
		here := store.Located{Height: h, Index: uint32(i)}
		if n := count(locs, here); n != 1 {
			r.add("block %d entry %d: the uid record for %q lists this entry %d times, at %v (the record was changed)", h, i, id, n, locs)
			continue
		}
		// Versions of one event (event.VersionKey) must differ in
		// content; checked once per event, at its first version.
		if len(locs) > 1 && locs[0] == here {
			r.checkVersions(st, id, locs, lim)
		}
	}
}

func count(locs []store.Located, l store.Located) int {
	n := 0
	for _, x := range locs {
		if x == l {
			n++
		}
	}
	return n
}

// checkVersions reports an event logged twice with the same content.
func (r *Report) checkVersions(st *store.Store, id string, locs []store.Located, lim event.Limits) {
	seen := map[chain.Hash]store.Located{}
	for _, loc := range locs {
		raw, err := st.Entry(loc.Height, loc.Index)
		if err != nil {
			r.add("block %d entry %d: cannot read: %v", loc.Height, loc.Index, err)
			continue
		}
		en, err := event.DecodeEntry(raw, lim)
		if err != nil {
			continue // reported with its block
		}
		c := event.ContentHash(&en.Event)
		if first, dup := seen[c]; dup {
			r.add("event %q is logged twice: block %d entry %d and block %d entry %d", id, first.Height, first.Index, loc.Height, loc.Index)
		}
		seen[c] = loc
	}
}

func (r *Report) checkValidations(st *store.Store, net *chain.Network, h uint64, hash chain.Hash) {
	vals, err := st.Validations(h)
	if err != nil {
		r.add("block %d: cannot read validations: %v", h, err)
		return
	}
	accepting := 0
	for _, v := range vals {
		hub := net.Hub(v.HubID)
		if hub == nil || hub.FromHeight > h {
			r.add("block %d: validation by %q, not a hub of the network at this height", h, v.HubID)
			continue
		}
		err := v.Verify(net.ID, hub.PublicKey)
		if err != nil {
			r.add("block %d: %v", h, err)
		}
		if v.BlockHash != hash {
			r.add("block %d: validation by %s names another block hash", h, v.HubID)
		} else if err == nil && v.Verdict == chain.Accept {
			accepting++
		}
	}
	if accepting < net.Quorum {
		r.NotFinal = append(r.NotFinal, h)
	}
}

// compareRows checks the index rows of block h against the refs its
// entries derive: one row per entry, with the entry's timestamp.
func (r *Report) compareRows(h uint64, entries []*event.Entry, want []index.Ref, got map[uint32]index.Ref) {
	for i, w := range want {
		var uid string
		if entries[i] != nil {
			uid = entries[i].Event.UID
		}
		g, ok := got[uint32(i)]
		if !ok {
			r.add("index: block %d entry %d (uid %q): row missing", h, i, uid)
			continue
		}
		delete(got, uint32(i))
		if entries[i] != nil && g.Timestamp != w.Timestamp { // an entry that did not decode is reported already
			r.add("index: block %d entry %d (uid %q): timestamp %d differs from the chain's %d", h, i, uid, g.Timestamp, w.Timestamp)
		}
	}
	for i := range got {
		r.add("index: block %d entry %d: row has no entry in the chain", h, i)
	}
}

// checkBlockRows checks the index's block rows against the rows the
// chain's blocks derive (want, nil where a block is unreadable).
func (r *Report) checkBlockRows(ctx context.Context, idx *index.Index, want []*index.BlockRow) {
	n := 0
	err := idx.EachBlock(ctx, func(b index.BlockRow) error {
		n++
		if b.Height >= uint64(len(want)) {
			r.add("index: block row %d is beyond the chain", b.Height)
			return nil
		}
		w := want[b.Height]
		if w == nil {
			return nil
		}
		if b.Hash != w.Hash {
			r.add("index: block row %d: hash differs from the chain", b.Height)
		}
		if b.MintTimeMs != w.MintTimeMs {
			r.add("index: block row %d: mint_time_ms %d differs from the chain's %d", b.Height, b.MintTimeMs, w.MintTimeMs)
		}
		if b.EntryCount != w.EntryCount {
			r.add("index: block row %d: entry_count %d differs from the chain's %d", b.Height, b.EntryCount, w.EntryCount)
		}
		if w.Tagged >= 0 && b.Tagged != w.Tagged {
			r.add("index: block row %d: tagged %d differs from the chain's %d", b.Height, b.Tagged, w.Tagged)
		}
		return nil
	})
	if err != nil {
		r.add("index: cannot read block rows: %v", err)
	}
	if n != len(want) {
		r.add("index: %d block rows for %d blocks", n, len(want))
	}
}

func (r *Report) checkPool(st *store.Store, lim event.Limits) {
	err := st.EachPool(func(key string, rec []byte) error {
		en, err := event.DecodeEntry(rec, lim)
		if err != nil {
			r.add("pool: %q: %v", key, err)
		} else if want := event.VersionKey(en.Event.ID(), event.ContentHash(&en.Event)); want != key {
			r.add("pool: record under %q holds event %q (another key or content)", key, en.Event.ID())
		}
		return nil
	})
	if err != nil {
		r.add("pool: cannot read: %v", err)
	}
}

// Compare reports heights at which nodes hold different blocks. Nodes
// may be at different heights; only common heights are compared.
func Compare(reports []*Report) []Problem {
	var out []Problem
	if len(reports) < 2 {
		return nil
	}
	ref := reports[0]
	for _, r := range reports[1:] {
		n := min(len(ref.Hashes), len(r.Hashes))
		for h := 0; h < n; h++ {
			if ref.Hashes[h] != r.Hashes[h] {
				out = append(out, Problem{Node: r.Node, What: fmt.Sprintf("block %d differs from %s's", h, ref.Node)})
			}
		}
	}
	return out
}
