package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"cissan/internal/event"
)

func testLeaves(n int) []Hash {
	leaves := make([]Hash, n)
	for i := range leaves {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		leaves[i] = Hash(rfc6962.DefaultHasher.HashLeaf(b[:]))
	}
	return leaves
}

// libraryRoot is the root transparency-dev/merkle's compact range gives.
func libraryRoot(t testing.TB, leaves []Hash) Hash {
	t.Helper()
	f := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := f.NewEmptyRange(0)
	for i := range leaves {
		if err := r.Append(leaves[i][:], nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if root == nil {
		root = rfc6962.DefaultHasher.EmptyRoot()
	}
	return Hash(root)
}

func TestRootMatchesLibrary(t *testing.T) {
	sizes := []int{}
	for n := 0; n <= 300; n++ {
		sizes = append(sizes, n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sizes = append(sizes, 511, 512, 513, 1023, 1024, 1025, 4097)
	for range 5 {
		sizes = append(sizes, 300+rng.IntN(5000))
	}
	all := testLeaves(5300)
	for _, n := range sizes {
		if got, want := Root(all[:n]), libraryRoot(t, all[:n]); got != want {
			t.Fatalf("size %d: Root %x, library %x", n, got, want)
		}
	}
	if Root(nil) != EmptyRoot || EmptyRoot != sha256.Sum256(nil) {
		t.Fatal("empty root is not SHA-256 of nothing")
	}
}

// nodeHash is the hash of a perfect subtree node, computed by recursion
// from the definition rather than by Root's stack.
func nodeHash(leaves []Hash, id compact.NodeID) Hash {
	if id.Level == 0 {
		return leaves[id.Index]
	}
	l := nodeHash(leaves, compact.NewNodeID(id.Level-1, id.Index*2))
	r := nodeHash(leaves, compact.NewNodeID(id.Level-1, id.Index*2+1))
	return Hash(rfc6962.DefaultHasher.HashChildren(l[:], r[:]))
}

func TestInclusionProofMatchesLibrary(t *testing.T) {
	all := testLeaves(70)
	for size := uint64(1); size <= 70; size++ {
		leaves := all[:size]
		root := Root(leaves)
		for index := range size {
			path, err := InclusionProof(leaves, index)
			if err != nil {
				t.Fatal(err)
			}
			raw := make([][]byte, len(path))
			for i := range path {
				raw[i] = bytes.Clone(path[i][:])
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaves[index][:], raw, root[:]); err != nil {
				t.Fatalf("size %d index %d: library refuses our path: %v", size, index, err)
			}
			if err := VerifyInclusion(index, size, leaves[index], path, root); err != nil {
				t.Fatalf("size %d index %d: %v", size, index, err)
			}
			nodes, err := proof.Inclusion(index, size)
			if err != nil {
				t.Fatal(err)
			}
			hashes := make([][]byte, len(nodes.IDs))
			for i, id := range nodes.IDs {
				h := nodeHash(leaves, id)
				hashes[i] = h[:]
			}
			want, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) != len(path) {
				t.Fatalf("size %d index %d: path of %d hashes, library %d", size, index, len(path), len(want))
			}
			for i := range want {
				if !bytes.Equal(want[i], path[i][:]) {
					t.Fatalf("size %d index %d: path[%d] %x, library %x", size, index, i, path[i], want[i])
				}
			}
		}
	}
}

func TestVerifyInclusionRefusals(t *testing.T) {
	leaves := testLeaves(13)
	root := Root(leaves)
	path, err := InclusionProof(leaves, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InclusionProof(leaves, 13); err == nil {
		t.Fatal("index out of range accepted")
	}
	altered := append([]Hash(nil), path...)
	altered[1][0] ^= 1
	for name, f := range map[string]func() error{
		"wrong index":   func() error { return VerifyInclusion(4, 13, leaves[5], path, root) },
		"wrong size":    func() error { return VerifyInclusion(5, 17, leaves[5], path, root) },
		"index >= size": func() error { return VerifyInclusion(13, 13, leaves[5], path, root) },
		"wrong leaf":    func() error { return VerifyInclusion(5, 13, leaves[6], path, root) },
		"altered path":  func() error { return VerifyInclusion(5, 13, leaves[5], altered, root) },
		"short path":    func() error { return VerifyInclusion(5, 13, leaves[5], path[:len(path)-1], root) },
		"long path":     func() error { return VerifyInclusion(5, 13, leaves[5], append(path, root), root) },
		"wrong root":    func() error { return VerifyInclusion(5, 13, leaves[5], path, leaves[0]) },
		"empty tree":    func() error { return VerifyInclusion(0, 0, leaves[0], nil, EmptyRoot) },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBlockLeaf(t *testing.T) {
	h := sha256.Sum256([]byte("block"))
	if BlockLeaf(h) != Hash(rfc6962.DefaultHasher.HashLeaf(h[:])) {
		t.Fatal("BlockLeaf is not the RFC 6962 leaf hash of the block hash")
	}
}

func randHeader(rng *rand.Rand) Header {
	var h Header
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	fill(h.Network[:])
	fill(h.Prev[:])
	fill(h.EntriesRoot[:])
	fill(h.HistoryRoot[:])
	fill(h.ControlRoot[:])
	h.Height, h.EntryCount = rng.Uint64(), rng.Uint64()
	h.MintTimeMs = int64(rng.Uint64())
	return h
}

func TestHeaderRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		h := randHeader(rng)
		b := h.Encode()
		if len(b) != HeaderSize {
			t.Fatalf("%d bytes", len(b))
		}
		got, err := DecodeHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if *got != h {
			t.Fatalf("round trip: %+v != %+v", got, h)
		}
		if h.Hash() != sha256.Sum256(b) {
			t.Fatal("Hash is not SHA-256 of the encoding")
		}
		// Each root climbs to the block hash by one prepend, one append,
		// one SHA-256.
		for _, history := range []bool{false, true} {
			off := RootOffset(history)
			root := h.EntriesRoot
			if history {
				root = h.HistoryRoot
			}
			if !bytes.Equal(b[off:off+32], root[:]) {
				t.Fatalf("RootOffset(%v) = %d does not hold the root", history, off)
			}
			climb := append(append(bytes.Clone(b[:off]), root[:]...), b[off+32:]...)
			if sha256.Sum256(climb) != h.Hash() {
				t.Fatal("climb does not give the block hash")
			}
		}
	}
	// The layout SPEC.md documents, checked field by field.
	h := Header{Height: 0x0102030405060708, MintTimeMs: -1, EntryCount: 3}
	h.Network[0], h.Prev[0], h.EntriesRoot[0], h.HistoryRoot[0], h.ControlRoot[0] = 0xa1, 0xa2, 0xa3, 0xa4, 0xa5
	b := h.Encode()
	for off, want := range map[int]byte{0: 'C', 3: 'B', 5: 1, 6: 0xa1, 22: 1, 29: 8, 30: 0xa2, 62: 0xff, 69: 0xff, 77: 3, 78: 0xa3, 110: 0xa4, 142: 0xa5} {
		if b[off] != want {
			t.Errorf("byte %d = %#x, want %#x", off, b[off], want)
		}
	}
}

func TestDecodeHeaderRefusals(t *testing.T) {
	gh := randHeader(rand.New(rand.NewPCG(5, 6)))
	good := gh.Encode()
	set := func(off int, v byte) []byte {
		b := bytes.Clone(good)
		b[off] = v
		return b
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short":          good[:HeaderSize-1],
		"long":           append(bytes.Clone(good), 0),
		"bad magic":      set(0, 'X'),
		"version 0":      set(5, 0),
		"version 2":      set(5, 2),
		"version 0x101":  set(4, 1),
		"reserved first": set(174, 1),
		"reserved last":  set(181, 0x80),
	} {
		if _, err := DecodeHeader(b); !errors.Is(err, ErrHeader) {
			t.Errorf("%s: got %v, want ErrHeader", name, err)
		}
	}
}

func FuzzDecodeHeader(f *testing.F) {
	h := randHeader(rand.New(rand.NewPCG(7, 8)))
	f.Add(h.Encode())
	f.Add((&Header{}).Encode())
	f.Add([]byte("CSNB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			if !errors.Is(err, ErrHeader) {
				t.Fatalf("error %v does not wrap ErrHeader", err)
			}
			return
		}
		if !bytes.Equal(h.Encode(), b) {
			t.Fatalf("accepted header %x re-encodes differently", b)
		}
	})
}

// testChain is a small chain: keys, network, and blocks 0 and 1.
type testChain struct {
	net    NetworkID
	master ed25519.PrivateKey
	hubs   []ed25519.PrivateKey
	blocks []*Block
}

func key(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func entryBytes(t testing.TB, uid string) []byte {
	t.Helper()
	en := event.Entry{
		Event: event.Event{UID: uid, Timestamp: 1696248400000, Namespace: "acme/line", DeviceUID: "dev-1",
			Items: []event.Item{{Key: "t", Value: event.Value{Kind: event.KindNumber, Num: 21.5}}}},
		HubID: "hub-1", ReceivedMs: 1696248400100,
	}
	return en.Encode()
}

func newTestChain(t testing.TB) *testChain {
	c := &testChain{master: key(1), hubs: []ed25519.PrivateKey{key(2), key(3), key(4)}}
	copy(c.net[:], "test-network-id!")
	var history []Hash
	for height := range uint64(2) {
		var prev Hash
		if height > 0 {
			prev = c.blocks[height-1].Header.Hash()
		}
		entries := [][]byte{entryBytes(t, "a"+string(rune('0'+height))), entryBytes(t, "b"+string(rune('0'+height))), entryBytes(t, "c"+string(rune('0'+height)))}
		h := Header{Network: c.net, Height: height, Prev: prev, MintTimeMs: 1696248401000 + int64(height), HistoryRoot: Root(history)}
		c.blocks = append(c.blocks, Seal(h, entries, nil, c.master))
		history = append(history, BlockLeaf(c.blocks[height].Header.Hash()))
	}
	return c
}

func (c *testChain) expect(height uint64) Expect {
	x := Expect{Network: c.net, Height: height, MasterKey: c.master.Public().(ed25519.PublicKey), Hubs: []HubInfo{{ID: "hub-1"}}, Limits: event.DefaultLimits()}
	var history []Hash
	for _, b := range c.blocks[:height] {
		history = append(history, BlockLeaf(b.Header.Hash()))
	}
	x.HistoryRoot = Root(history)
	if height > 0 {
		x.Prev = c.blocks[height-1].Header.Hash()
	}
	return x
}

func TestBlockCheck(t *testing.T) {
	c := newTestChain(t)
	for h := range uint64(2) {
		entries, err := c.blocks[h].Check(c.expect(h))
		if err != nil {
			t.Fatalf("block %d: %v", h, err)
		}
		if len(entries) != 3 || entries[0].Event.UID != "a"+string(rune('0'+h)) {
			t.Fatalf("block %d entries %+v", h, entries)
		}
	}
	b1 := c.blocks[1]
	reseal := func(f func(h *Header, entries [][]byte) [][]byte) *Block {
		h := b1.Header
		entries := f(&h, append([][]byte(nil), b1.Entries...))
		return Seal(h, entries, nil, c.master)
	}
	for _, tc := range []struct {
		name, want string
		b          *Block
		x          func(x *Expect)
	}{
		{name: "wrong network", want: "network", b: b1, x: func(x *Expect) { x.Network[0] ^= 1 }},
		{name: "wrong height", want: "height", b: b1, x: func(x *Expect) { x.Height = 2 }},
		{name: "bad prev link", want: "prev_hash", b: b1, x: func(x *Expect) { x.Prev[31] ^= 1 }},
		{name: "wrong history root", want: "history_root", b: b1, x: func(x *Expect) { x.HistoryRoot = EmptyRoot }},
		{name: "wrong master key", want: "signature", b: b1, x: func(x *Expect) { x.MasterKey = key(9).Public().(ed25519.PublicKey) }},
		{name: "malformed master key", want: "master key", b: b1, x: func(x *Expect) { x.MasterKey = x.MasterKey[:31] }},
		{name: "bad signature", want: "signature", b: &Block{Header: b1.Header, Entries: b1.Entries, Signature: flip(b1.Signature, 10)}},
		{name: "header altered after signing", want: "signature", b: &Block{Header: func() Header { h := b1.Header; h.MintTimeMs++; return h }(), Entries: b1.Entries, Signature: b1.Signature}},
		{name: "entry count mismatch", want: "entry_count", b: func() *Block {
			b := reseal(func(h *Header, e [][]byte) [][]byte { return e })
			h := b.Header
			h.EntryCount = 4
			return &Block{Header: h, Entries: b.Entries, Signature: ed25519.Sign(c.master, BlockMessage(h.Hash()))}
		}()},
		{name: "entry dropped", want: "entry_count", b: &Block{Header: b1.Header, Signature: b1.Signature, Entries: b1.Entries[:2]}},
		{name: "entries root mismatch", want: "entries_root", b: &Block{Header: b1.Header, Signature: b1.Signature,
			Entries: [][]byte{b1.Entries[0], flip(b1.Entries[1], 20), b1.Entries[2]}}},
		{name: "entries reordered", want: "entries_root", b: &Block{Header: b1.Header, Signature: b1.Signature,
			Entries: [][]byte{b1.Entries[1], b1.Entries[0], b1.Entries[2]}}},
		{name: "malformed entry", want: "entry 1", b: reseal(func(h *Header, e [][]byte) [][]byte {
			e[1] = append(bytes.Clone(e[1]), 0)
			return e
		})},
		{name: "duplicate uid", want: "appears twice", b: reseal(func(h *Header, e [][]byte) [][]byte {
			e[2] = entryBytes(t, "a1")
			return e
		})},
		{name: "control root without records", want: "control_root", b: func() *Block {
			h := b1.Header
			h.ControlRoot[0] = 1
			return &Block{Header: h, Signature: ed25519.Sign(c.master, BlockMessage(h.Hash())), Entries: b1.Entries}
		}()},
		{name: "control record dropped", want: "control_root", b: func() *Block {
			b := Seal(b1.Header, b1.Entries, [][]byte{Control{Kind: ControlAnalyzers, Body: []byte("{}")}.Encode()}, c.master)
			b.Controls = nil
			return b
		}()},
		{name: "control record of unknown kind", want: "control record 0", b: func() *Block {
			return Seal(b1.Header, b1.Entries, [][]byte{Control{Kind: 9, Body: []byte("{}")}.Encode()}, c.master)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := c.expect(1)
			if tc.x != nil {
				tc.x(&x)
			}
			_, err := tc.b.Check(x)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestValidation(t *testing.T) {
	c := newTestChain(t)
	hub := c.hubs[0]
	pub := hub.Public().(ed25519.PublicKey)
	b := c.blocks[1]
	v := Validation{HubID: "hub-1", Height: 1, BlockHash: b.Header.Hash(), Verdict: Reject, Reason: "entry 2: tags differ"}
	v.Sign(c.net, hub)
	if err := v.Verify(c.net, pub); err != nil {
		t.Fatal(err)
	}
	var other NetworkID
	for name, tc := range map[string]struct {
		mod func(v *Validation)
		net NetworkID
		key ed25519.PublicKey
	}{
		"hub id":      {mod: func(v *Validation) { v.HubID = "hub-2" }},
		"height":      {mod: func(v *Validation) { v.Height = 0 }},
		"block hash":  {mod: func(v *Validation) { v.BlockHash[0] ^= 1 }},
		"verdict":     {mod: func(v *Validation) { v.Verdict = Accept }},
		"bad verdict": {mod: func(v *Validation) { v.Verdict = 3 }},
		"reason":      {mod: func(v *Validation) { v.Reason = "" }},
		"signature":   {mod: func(v *Validation) { v.Signature = flip(v.Signature, 63) }},
		"network":     {net: other},
		"key":         {key: c.hubs[1].Public().(ed25519.PublicKey)},
		"short key":   {key: pub[:16]},
	} {
		w := v
		w.Signature = bytes.Clone(v.Signature)
		net, k := c.net, pub
		if tc.mod != nil {
			tc.mod(&w)
		}
		if tc.key != nil {
			k = tc.key
		}
		if name == "network" {
			net = tc.net
		}
		if err := w.Verify(net, k); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s altered: got %v, want ErrInvalid", name, err)
		}
	}
	if Accept.String() != "accept" || Reject.String() != "reject" || Verdict(9).String() != "verdict(9)" {
		t.Fatal("verdict names")
	}
	// The message layout SPEC.md documents.
	m := v.Message(c.net)
	want := append([]byte("cissan/validation/v1\x00"), c.net[:]...)
	want = append(want, 0, 0, 0, 5, 'h', 'u', 'b', '-', '1', 0, 0, 0, 0, 0, 0, 0, 1)
	want = append(want, v.BlockHash[:]...)
	want = append(want, 2, 0, 0, 0, byte(len(v.Reason)))
	want = append(want, v.Reason...)
	if !bytes.Equal(m, want) {
		t.Fatalf("message %x\nwant    %x", m, want)
	}
}

func TestSignedMessages(t *testing.T) {
	var h Hash
	h[0] = 0xee
	if m := BlockMessage(h); !bytes.Equal(m, append([]byte("cissan/block/v1\x00"), h[:]...)) {
		t.Fatalf("block message %x", m)
	}
	c := newTestChain(t)
	entries := c.blocks[0].Entries
	m := BatchMessage(c.net, "hub-1", 7, entries)
	root := Root(EntryLeaves(entries))
	want := append([]byte("cissan/batch/v1\x00"), c.net[:]...)
	want = append(want, 0, 0, 0, 5, 'h', 'u', 'b', '-', '1', 0, 0, 0, 0, 0, 0, 0, 7)
	want = append(want, root[:]...)
	if !bytes.Equal(m, want) {
		t.Fatalf("batch message %x\nwant          %x", m, want)
	}
	// Domains keep purposes apart: no message of one kind is a prefix of another's domain.
	for _, d := range []string{domainBlock, domainBatch, domainValidation} {
		if !strings.HasSuffix(d, "\x00") {
			t.Fatalf("domain %q not NUL-terminated", d)
		}
	}
}

func testNetwork() *Network {
	return &Network{
		ID:        NetworkID{1, 2, 3},
		MasterKey: key(1).Public().(ed25519.PublicKey),
		Hubs: []HubInfo{
			{ID: "hub-1", PublicKey: key(2).Public().(ed25519.PublicKey)},
			{ID: "hub-2", PublicKey: key(3).Public().(ed25519.PublicKey), FromHeight: 10},
		},
		Quorum: 2,
	}
}

func TestNetworkJSON(t *testing.T) {
	n := testNetwork()
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	var got Network
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(&got)
	if !bytes.Equal(b, b2) || got.Hub("hub-2").FromHeight != 10 || got.Hub("hub-3") != nil {
		t.Fatalf("round trip:\n%s\n%s", b, b2)
	}
	path := filepath.Join(t.TempDir(), "network.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadNetwork(path)
	if err != nil || loaded.ID != n.ID || loaded.Quorum != 2 {
		t.Fatalf("LoadNetwork: %v %+v", err, loaded)
	}
	if _, err := LoadNetwork(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file accepted")
	}

	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	hub := func(i int) map[string]any { return m["hubs"].([]any)[i].(map[string]any) }
	for _, tc := range []struct {
		name, want string
		mod        func()
	}{
		{"version", "version", func() { m["version"] = 2 }},
		{"network id short", "network id", func() { m["network_id"] = "0102" }},
		{"network id not hex", "network id", func() { m["network_id"] = strings.Repeat("zz", 16) }},
		{"master key", "master_public_key", func() { m["master_public_key"] = "abcd" }},
		{"hub key", "hubs[1].public_key", func() { hub(1)["public_key"] = "" }},
		{"hub id empty", "hubs[0].id", func() { hub(0)["id"] = "" }},
		{"hub id repeated", "hubs[1].id", func() { hub(1)["id"] = "hub-1" }},
		{"quorum zero", "quorum", func() { m["quorum"] = 0 }},
		{"quorum too big", "quorum", func() { m["quorum"] = 3 }},
		{"quorum string", "network.json", func() { m["quorum"] = "2" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var orig map[string]any
			_ = json.Unmarshal(b, &orig)
			m = orig
			tc.mod()
			bad, _ := json.Marshal(m)
			var n Network
			err := json.Unmarshal(bad, &n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if err := json.Unmarshal([]byte(`{"version":1`), new(Network)); err == nil {
		t.Fatal("malformed JSON accepted")
	}
}

func BenchmarkRoot10k(b *testing.B) {
	leaves := testLeaves(10000)
	for b.Loop() {
		Root(leaves)
	}
}

func BenchmarkInclusionProof10k(b *testing.B) {
	leaves := testLeaves(10000)
	i := uint64(0)
	for b.Loop() {
		if _, err := InclusionProof(leaves, i%10000); err != nil {
			b.Fatal(err)
		}
		i += 7919
	}
}

func BenchmarkVerifyInclusion10k(b *testing.B) {
	leaves := testLeaves(10000)
	root := Root(leaves)
	path, _ := InclusionProof(leaves, 4321)
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyInclusion(4321, 10000, leaves[4321], path, root); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCheckedKeepsChunkRoots: Checked returns a copy of a block as it
// arrives (no chunk roots kept) that holds the roots Seal computed, and
// leaves the block itself alone.
func TestCheckedKeepsChunkRoots(t *testing.T) {
	c := newTestChain(t)
	entries := make([][]byte, 2*ChunkSize+5)
	for i := range entries {
		entries[i] = entryBytes(t, fmt.Sprint("u", i))
	}
	h := Header{Network: c.net, Height: 0, MintTimeMs: 1696248401000, HistoryRoot: c.expect(0).HistoryRoot}
	sealed := Seal(h, entries, nil, c.master)
	arrived := &Block{Header: sealed.Header, Signature: sealed.Signature, Entries: sealed.Entries}
	checked, got, err := arrived.Checked(c.expect(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries decoded, want %d", len(got), len(entries))
	}
	if arrived.chunkRoots != nil {
		t.Fatal("Checked changed the block it checked")
	}
	if len(checked.chunkRoots) != 3 || !slices.Equal(checked.chunkRoots, sealed.chunkRoots) || !slices.Equal(checked.ChunkRoots(), arrived.ChunkRoots()) {
		t.Fatalf("checked copy keeps chunk roots %x, want %x", checked.chunkRoots, sealed.chunkRoots)
	}
	if checked.Header != arrived.Header || len(checked.Entries) != len(arrived.Entries) {
		t.Fatal("the checked copy differs from the block")
	}
}

// A block large enough to be decoded in two halves at once reports the
// lowest entry that fails, whichever half finishes first.
func TestCheckNamesTheFirstBadEntryOfALargeBlock(t *testing.T) {
	c := newTestChain(t)
	x := c.expect(0)
	const n = 2 * parallelEntries
	good := make([][]byte, n)
	for i := range good {
		good[i] = entryBytes(t, fmt.Sprintf("u%d", i))
	}
	bad := func(e []byte) []byte { return append(bytes.Clone(e), 0) }
	for _, tt := range []struct {
		name string
		bad  []int
		want string
	}{
		{"none", nil, ""},
		{"one in each half", []int{n - 3, 5}, "entry 5:"},
		{"second half only", []int{n - 3}, fmt.Sprintf("entry %d:", n-3)},
		{"first of the second half", []int{n / 2, n - 1}, fmt.Sprintf("entry %d:", n/2)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entries := slices.Clone(good)
			for _, i := range tt.bad {
				entries[i] = bad(entries[i])
			}
			b := Seal(c.blocks[0].Header, entries, nil, c.master)
			got, err := b.Check(x)
			if tt.want == "" {
				if err != nil || len(got) != n || got[n-1].Event.UID != fmt.Sprintf("u%d", n-1) {
					t.Fatalf("Check = %d entries, %v", len(got), err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check: %v, want ErrInvalid naming %q", err, tt.want)
			}
		})
	}
	dup := slices.Clone(good)
	dup[n-1] = entryBytes(t, "u7")
	if _, err := Seal(c.blocks[0].Header, dup, nil, c.master).Check(x); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("entry %d: event uid \"u7\" of dev-1 appears twice (entry 7)", n-1)) {
		t.Fatalf("duplicate uid across the halves: %v", err)
	}
}
