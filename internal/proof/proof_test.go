package proof_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/proof"
)

// fixture is a network of three hubs with quorum 2 and one block of seven
// entries at height 4, validated by all three hubs.
type fixture struct {
	net    *chain.Network
	master ed25519.PrivateKey
	hubs   map[string]ed25519.PrivateKey
	blk    *chain.Block
	vals   []chain.Validation
}

func newFixture(t testing.TB, entries int) *fixture {
	t.Helper()
	f := &fixture{master: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)), hubs: map[string]ed25519.PrivateKey{}}
	f.net = &chain.Network{MasterKey: f.master.Public().(ed25519.PublicKey), Quorum: 2}
	copy(f.net.ID[:], "proof-test-net-1")
	for i, id := range []string{"hub-1", "hub-2", "hub-3"} {
		k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(10 + i)}, 32))
		f.hubs[id] = k
		f.net.Hubs = append(f.net.Hubs, chain.HubInfo{ID: id, PublicKey: k.Public().(ed25519.PublicKey)})
	}
	var raw [][]byte
	for i := range entries {
		en := event.Entry{
			Event: event.Event{UID: fmt.Sprintf("evt-%d", i), Timestamp: 1696248400000 + int64(i), Namespace: "acme/line", DeviceUID: "dev-1",
				Items: []event.Item{{Key: "t", Value: event.Value{Kind: event.KindNumber, Num: 20 + float64(i)/4}}}},
			HubID: "hub-1", ReceivedMs: 1696248400100 + int64(i),
			Tags: []event.Tag{{Analyzer: "iforest", Label: "normal", Score: 420000}},
		}
		raw = append(raw, en.Encode())
	}
	h := chain.Header{Network: f.net.ID, Height: 4, MintTimeMs: 1696248405000}
	h.Prev[0], h.HistoryRoot[0] = 0xaa, 0xbb
	f.blk = chain.Seal(h, raw, nil, f.master)
	for _, id := range []string{"hub-1", "hub-2", "hub-3"} {
		f.vals = append(f.vals, f.validation(id, chain.Accept))
	}
	return f
}

func (f *fixture) validation(hub string, verdict chain.Verdict) chain.Validation {
	v := chain.Validation{HubID: hub, Height: f.blk.Header.Height, BlockHash: f.blk.Header.Hash(), Verdict: verdict}
	if verdict == chain.Reject {
		v.Reason = "entry 3: tags differ"
	}
	v.Sign(f.net.ID, f.hubs[hub])
	return v
}

func (f *fixture) bundle(t testing.TB, index int) *proof.Bundle {
	t.Helper()
	b, err := proof.Build(f.net.ID, f.blk, index, f.vals, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clone deep-copies a bundle through its JSON form, which also checks that
// Parse reads what encoding/json writes.
func clone(t testing.TB, b *proof.Bundle) *proof.Bundle {
	t.Helper()
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := proof.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBuildVerify(t *testing.T) {
	for _, n := range []int{1, 2, 7} {
		f := newFixture(t, n)
		for i := range n {
			b := clone(t, f.bundle(t, i))
			r, err := proof.Verify(b, f.net)
			if err != nil {
				t.Fatalf("%d entries, index %d: %v", n, i, err)
			}
			if !r.Final || r.Height != 4 || r.BlockHash != f.blk.Header.Hash() || r.LeafIndex != uint64(i) ||
				r.EntryCount != uint64(n) || r.Event().UID != fmt.Sprintf("evt-%d", i) ||
				strings.Join(r.Accepted, ",") != "hub-1,hub-2,hub-3" || len(r.Rejected) != 0 ||
				r.MintTimeMs != 1696248405000 || r.EntryDigest != event.Digest(f.blk.Entries[i]) {
				t.Fatalf("result %+v", r)
			}
			if len(r.Checked) < 8 {
				t.Fatalf("checks %q", r.Checked)
			}
		}
	}
}

func TestBundleJSONShape(t *testing.T) {
	f := newFixture(t, 1)
	data, err := json.Marshal(f.bundle(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "network_id", "entry", "leaf_index", "entries_path", "header", "block_hash", "master_signature", "validations", "anchor"} {
		if _, ok := m[k]; !ok {
			t.Errorf("bundle JSON lacks %q", k)
		}
	}
	if len(m) != 10 || string(m["anchor"]) != "null" || string(m["entries_path"]) != "[]" {
		t.Fatalf("bundle JSON %s", data)
	}
	if _, err := proof.Parse(bytes.Replace(data, []byte(`"version":1`), []byte(`"version":1,"extra":true`), 1)); err == nil {
		t.Fatal("unknown field accepted")
	}
	if _, err := proof.Parse(append(data, '{', '}')); err == nil {
		t.Fatal("trailing data accepted")
	}
	if _, err := proof.Parse(data[:len(data)-1]); err == nil {
		t.Fatal("truncated bundle accepted")
	}
}

// mustFail checks that Verify refuses b with an error wrapping ErrInvalid.
func mustFail(t *testing.T, f *fixture, b *proof.Bundle, what string) *proof.CheckError {
	t.Helper()
	r, err := proof.Verify(b, f.net)
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	if !errors.Is(err, proof.ErrInvalid) || r != nil {
		t.Fatalf("%s: got %v (result %v), want ErrInvalid and no result", what, err, r)
	}
	var ce *proof.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v is not a *CheckError", what, err)
	}
	return ce
}

func flipHex(t *testing.T, s string, i int) string {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	b[i] ^= 0x01
	return hex.EncodeToString(b)
}

func hexLen(s string) int { return len(s) / 2 }

// TestTamperEveryByte flips each byte of every field that carries data and
// checks that Verify refuses each result, naming the right check.
func TestTamperEveryByte(t *testing.T) {
	f := newFixture(t, 7)
	good := f.bundle(t, 5)
	if _, err := proof.Verify(good, f.net); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(good.Entry)
	for i := range raw {
		b := clone(t, good)
		c := bytes.Clone(raw)
		c[i] ^= 0x01
		b.Entry = base64.StdEncoding.EncodeToString(c)
		if ce := mustFail(t, f, b, fmt.Sprintf("entry byte %d", i)); ce.Check != "entry" && ce.Check != "inclusion" {
			t.Fatalf("entry byte %d: failed check %q", i, ce.Check)
		}
	}
	for p := range good.EntriesPath {
		for i := range hexLen(good.EntriesPath[p]) {
			b := clone(t, good)
			b.EntriesPath[p] = flipHex(t, b.EntriesPath[p], i)
			if ce := mustFail(t, f, b, fmt.Sprintf("path %d byte %d", p, i)); ce.Check != "inclusion" {
				t.Fatalf("path: failed check %q", ce.Check)
			}
		}
	}
	for i := range hexLen(good.Header) {
		b := clone(t, good)
		b.Header = flipHex(t, b.Header, i)
		mustFail(t, f, b, fmt.Sprintf("header byte %d", i))
	}
	for i := range hexLen(good.BlockHash) {
		b := clone(t, good)
		b.BlockHash = flipHex(t, b.BlockHash, i)
		if ce := mustFail(t, f, b, fmt.Sprintf("block_hash byte %d", i)); ce.Check != "block hash" {
			t.Fatalf("block hash: failed check %q", ce.Check)
		}
	}
	for i := range hexLen(good.MasterSignature) {
		b := clone(t, good)
		b.MasterSignature = flipHex(t, b.MasterSignature, i)
		if ce := mustFail(t, f, b, fmt.Sprintf("master signature byte %d", i)); ce.Check != "master signature" {
			t.Fatalf("master signature: failed check %q", ce.Check)
		}
	}
	for v := range good.Validations {
		for i := range hexLen(good.Validations[v].Signature) {
			b := clone(t, good)
			b.Validations[v].Signature = flipHex(t, b.Validations[v].Signature, i)
			if ce := mustFail(t, f, b, fmt.Sprintf("validation %d signature byte %d", v, i)); ce.Check != fmt.Sprintf("validations[%d]", v) {
				t.Fatalf("validation signature: failed check %q", ce.Check)
			}
		}
		for i := range hexLen(good.Validations[v].BlockHash) {
			b := clone(t, good)
			b.Validations[v].BlockHash = flipHex(t, b.Validations[v].BlockHash, i)
			mustFail(t, f, b, fmt.Sprintf("validation %d block hash byte %d", v, i))
		}
		for name, mod := range map[string]func(j *proof.ValidationJSON){
			"hub id": func(j *proof.ValidationJSON) { j.HubID = "hub-x" },
			"other hub": func(j *proof.ValidationJSON) {
				j.HubID = map[string]string{"hub-1": "hub-2", "hub-2": "hub-3", "hub-3": "hub-1"}[j.HubID]
			},
			"height":          func(j *proof.ValidationJSON) { j.Height++ },
			"verdict":         func(j *proof.ValidationJSON) { j.Verdict = "reject" },
			"unknown verdict": func(j *proof.ValidationJSON) { j.Verdict = "maybe" },
			"reason":          func(j *proof.ValidationJSON) { j.Reason = "x" },
			"short sig":       func(j *proof.ValidationJSON) { j.Signature = j.Signature[:126] },
			"not hex":         func(j *proof.ValidationJSON) { j.BlockHash = "zz" + j.BlockHash[2:] },
		} {
			b := clone(t, good)
			mod(&b.Validations[v])
			mustFail(t, f, b, fmt.Sprintf("validation %d %s", v, name))
		}
	}
	for name, mod := range map[string]func(b *proof.Bundle){
		"version 0":         func(b *proof.Bundle) { b.Version = 0 },
		"version 3":         func(b *proof.Bundle) { b.Version = 3 },
		"anchor in v2":      func(b *proof.Bundle) { b.Version, b.Anchor = 2, json.RawMessage(`{"txid":"00"}`) },
		"anchor":            func(b *proof.Bundle) { b.Anchor = json.RawMessage(`{"txid":"00"}`) },
		"anchor false":      func(b *proof.Bundle) { b.Anchor = json.RawMessage(`false`) },
		"network id":        func(b *proof.Bundle) { b.NetworkID = flipHex(t, b.NetworkID, 0) },
		"network id bad":    func(b *proof.Bundle) { b.NetworkID = "12" },
		"leaf index +1":     func(b *proof.Bundle) { b.LeafIndex++ },
		"leaf index -1":     func(b *proof.Bundle) { b.LeafIndex-- },
		"leaf index huge":   func(b *proof.Bundle) { b.LeafIndex = 1 << 62 },
		"path dropped":      func(b *proof.Bundle) { b.EntriesPath = b.EntriesPath[1:] },
		"path extended":     func(b *proof.Bundle) { b.EntriesPath = append(b.EntriesPath, b.EntriesPath[0]) },
		"path reordered":    func(b *proof.Bundle) { p := b.EntriesPath; p[0], p[1] = p[1], p[0] },
		"path short hash":   func(b *proof.Bundle) { b.EntriesPath[0] = b.EntriesPath[0][:62] },
		"entry not base64":  func(b *proof.Bundle) { b.Entry = "!" + b.Entry[1:] },
		"entry unpadded":    func(b *proof.Bundle) { b.Entry = strings.TrimRight(b.Entry, "=") + "A" },
		"entry empty":       func(b *proof.Bundle) { b.Entry = "" },
		"entry appended":    func(b *proof.Bundle) { b.Entry = base64.StdEncoding.EncodeToString(append(raw, 0)) },
		"header not hex":    func(b *proof.Bundle) { b.Header = "x" + b.Header[1:] },
		"header truncated":  func(b *proof.Bundle) { b.Header = b.Header[:len(b.Header)-2] },
		"signature missing": func(b *proof.Bundle) { b.MasterSignature = "" },
		"validation twice":  func(b *proof.Bundle) { b.Validations = append(b.Validations, b.Validations[0]) },
		"other block entry": func(b *proof.Bundle) { b.Entry = base64.StdEncoding.EncodeToString(f.blk.Entries[4]) },
	} {
		b := clone(t, good)
		mod(b)
		ce := mustFail(t, f, b, name)
		if ce.Check == "" || !strings.HasPrefix(ce.Error(), ce.Check+": ") {
			t.Fatalf("%s: error %q does not start with its check", name, ce)
		}
	}
}

func TestQuorum(t *testing.T) {
	f := newFixture(t, 3)
	// One accept, one reject: below the quorum of 2.
	vals := []chain.Validation{f.validation("hub-1", chain.Accept), f.validation("hub-2", chain.Reject)}
	b, err := proof.Build(f.net.ID, f.blk, 1, vals, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := proof.Verify(b, f.net)
	if !errors.Is(err, proof.ErrNotFinal) || errors.Is(err, proof.ErrInvalid) {
		t.Fatalf("got %v, want ErrNotFinal only", err)
	}
	if want := "quorum: not final: 1 of 2 accepting validations, quorum 2"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if r == nil || r.Final || len(r.Accepted) != 1 || len(r.Rejected) != 1 || r.Rejected[0] != "hub-2" {
		t.Fatalf("result %+v", r)
	}
	// No validations at all.
	b, _ = proof.Build(f.net.ID, f.blk, 1, nil, nil)
	if _, err := proof.Verify(b, f.net); !errors.Is(err, proof.ErrNotFinal) {
		t.Fatalf("no validations: %v", err)
	}
	// Two accepts and a reject: final.
	vals = append(vals, f.validation("hub-3", chain.Accept))
	b, _ = proof.Build(f.net.ID, f.blk, 1, vals, nil)
	if r, err := proof.Verify(b, f.net); err != nil || !r.Final || len(r.Rejected) != 1 {
		t.Fatalf("2 of 3: %v %+v", err, r)
	}
}

func TestValidationHubs(t *testing.T) {
	f := newFixture(t, 3)
	stranger := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{99}, 32))
	v := chain.Validation{HubID: "hub-9", Height: 4, BlockHash: f.blk.Header.Hash(), Verdict: chain.Accept}
	v.Sign(f.net.ID, stranger)
	b, err := proof.Build(f.net.ID, f.blk, 0, append(f.vals[:1:1], v), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ce := mustFail(t, f, b, "unknown hub"); ce.Check != "validations[1]" || !strings.Contains(ce.Error(), "not in network.json") {
		t.Fatalf("unknown hub: %v", ce)
	}
	// A hub signing under another hub's name.
	v = chain.Validation{HubID: "hub-2", Height: 4, BlockHash: f.blk.Header.Hash(), Verdict: chain.Accept}
	v.Sign(f.net.ID, f.hubs["hub-3"])
	b, _ = proof.Build(f.net.ID, f.blk, 0, []chain.Validation{f.vals[0], v}, nil)
	mustFail(t, f, b, "hub signing as another")
	// A hub that joined after this block.
	late := *f.net
	late.Hubs = append([]chain.HubInfo(nil), f.net.Hubs...)
	late.Hubs[2].FromHeight = 5
	b = f.bundle(t, 0)
	if _, err := proof.Verify(b, &late); !errors.Is(err, proof.ErrInvalid) || !strings.Contains(err.Error(), "from height 5") {
		t.Fatalf("late hub: %v", err)
	}
	// The same validations under another network are refused.
	other := *f.net
	other.ID[0] ^= 1
	if _, err := proof.Verify(b, &other); !errors.Is(err, proof.ErrInvalid) {
		t.Fatalf("other network: %v", err)
	}
	// A malformed network is refused, not a panic.
	bad := *f.net
	bad.MasterKey = bad.MasterKey[:5]
	if _, err := proof.Verify(b, &bad); !errors.Is(err, proof.ErrInvalid) {
		t.Fatalf("short master key: %v", err)
	}
	bad = *f.net
	bad.Hubs = append([]chain.HubInfo(nil), f.net.Hubs...)
	bad.Hubs[0].PublicKey = nil
	if _, err := proof.Verify(b, &bad); !errors.Is(err, proof.ErrInvalid) {
		t.Fatalf("empty hub key: %v", err)
	}
	if _, err := proof.Verify(b, nil); !errors.Is(err, proof.ErrInvalid) {
		t.Fatalf("nil network: %v", err)
	}
}

func TestBuildRefusals(t *testing.T) {
	f := newFixture(t, 3)
	if _, err := proof.Build(f.net.ID, f.blk, 3, nil, nil); err == nil {
		t.Fatal("index out of range accepted")
	}
	if _, err := proof.Build(f.net.ID, f.blk, -1, nil, nil); err == nil {
		t.Fatal("negative index accepted")
	}
	var other chain.NetworkID
	if _, err := proof.Build(other, f.blk, 0, nil, nil); err == nil {
		t.Fatal("wrong network accepted")
	}
	v := f.validation("hub-1", chain.Accept)
	v.Height = 3
	if _, err := proof.Build(f.net.ID, f.blk, 0, []chain.Validation{v}, nil); err == nil {
		t.Fatal("validation of another block accepted")
	}
	broken := *f.blk
	broken.Entries = [][]byte{f.blk.Entries[0], f.blk.Entries[2], f.blk.Entries[1]}
	if _, err := proof.Build(f.net.ID, &broken, 0, nil, nil); err == nil {
		t.Fatal("entries that do not match the header accepted")
	}
}

func TestValidationJSON(t *testing.T) {
	f := newFixture(t, 1)
	for _, v := range []chain.Validation{f.validation("hub-1", chain.Accept), f.validation("hub-2", chain.Reject)} {
		j := proof.ValidationToJSON(v)
		back, err := proof.ValidationFromJSON(j)
		if err != nil {
			t.Fatal(err)
		}
		if back.HubID != v.HubID || back.Height != v.Height || back.BlockHash != v.BlockHash || back.Verdict != v.Verdict ||
			back.Reason != v.Reason || !bytes.Equal(back.Signature, v.Signature) {
			t.Fatalf("round trip %+v != %+v", back, v)
		}
		if err := back.Verify(f.net.ID, f.net.Hub(v.HubID).PublicKey); err != nil {
			t.Fatal(err)
		}
	}
	j := proof.ValidationToJSON(f.vals[0])
	data, _ := json.Marshal(j)
	want := fmt.Sprintf(`{"hub_id":"hub-1","height":4,"block_hash":"%s","verdict":"accept","reason":"","signature":"%s"}`, j.BlockHash, j.Signature)
	if string(data) != want {
		t.Fatalf("JSON %s", data)
	}
	for name, mod := range map[string]func(j *proof.ValidationJSON){
		"empty hub":   func(j *proof.ValidationJSON) { j.HubID = "" },
		"verdict":     func(j *proof.ValidationJSON) { j.Verdict = "Accept" },
		"block hash":  func(j *proof.ValidationJSON) { j.BlockHash = j.BlockHash[:60] },
		"signature":   func(j *proof.ValidationJSON) { j.Signature = "" },
		"not hex sig": func(j *proof.ValidationJSON) { j.Signature = strings.Repeat("g", 128) },
	} {
		c := j
		mod(&c)
		if _, err := proof.ValidationFromJSON(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestResultRendering(t *testing.T) {
	f := newFixture(t, 2)
	r, err := proof.Verify(f.bundle(t, 1), f.net)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m["valid"] != true || m["final"] != true || m["height"] != 4.0 || m["hub_id"] != "hub-1" ||
		m["event"].(map[string]any)["uid"] != "evt-1" || len(m["checked"].([]any)) != len(r.Checked) {
		t.Fatalf("JSON %s", data)
	}
	s := r.Summary()
	for _, want := range []string{"valid, FINAL", "height 4", `"uid":"evt-1"`, "hub-1, hub-2, hub-3", "score=0.42", "master signature"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b, 1000)
	bundle := f.bundle(b, 617)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proof.Verify(bundle, f.net); err != nil {
			b.Fatal(err)
		}
	}
}
