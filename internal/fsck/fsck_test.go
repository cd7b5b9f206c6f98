package fsck_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	_ "modernc.org/sqlite"

	"cissan/internal/analyze"
	"cissan/internal/chain"
	"cissan/internal/cli"
	"cissan/internal/event"
	"cissan/internal/fsck"
	"cissan/internal/index"
	"cissan/internal/ledger"
	"cissan/internal/local"
	"cissan/internal/sim"
	"cissan/internal/store"
)

// The tests here build one real data dir with `cissan up`'s network
// (local.Start: real MQTT, real hubs, real Pebble and SQLite), then tamper
// with copies of it one way at a time and require fsck to name what was
// changed (invariant 3).

var (
	pristineOnce sync.Once
	pristine     *fixture
	pristineErr  error
	pristineTmp  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pristineTmp != "" {
		os.RemoveAll(pristineTmp)
	}
	os.Exit(code)
}

// fixture is a pristine data dir and the things in it that cases tamper
// with.
type fixture struct {
	dir    string
	net    *chain.Network
	top    uint64 // master height
	h      uint64 // a block below the top with at least two entries
	count  uint32 // entries in block h
	i      uint32 // an entry of block h
	uid    string // the event of entry i
	device string // and its device
	hub    string // the hub that took it in
	spike  string // an event the range analyzer tagged
	events int
}

func getPristine(t *testing.T) *fixture {
	t.Helper()
	pristineOnce.Do(func() {
		pristineTmp, pristineErr = os.MkdirTemp("", "cissan-fsck-")
		if pristineErr == nil {
			pristine, pristineErr = buildDataDir(filepath.Join(pristineTmp, "data"))
		}
	})
	if pristineErr != nil {
		t.Fatalf("build data dir: %v", pristineErr)
	}
	return pristine
}

// buildDataDir runs a two-hub network, publishes events from one device
// per hub in three bursts (so that there are several blocks), waits until
// every event is final and every hub has every block, and stops.
func buildDataDir(dir string) (*fixture, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := local.Start(ctx, local.Config{
		DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Hubs: 2,
		BlockInterval: 100 * time.Millisecond, Limits: event.DefaultLimits(),
		Analyzers: analyze.Config{Range: analyze.DefaultRangeRules()},
	})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	const ns = "fsck/test"
	var devs []*sim.Device
	for i, addr := range n.MQTTAddrs() {
		uid := fmt.Sprintf("fsck-%d", i+1)
		_, tok, err := n.Registry.Add(ctx, ns, uid)
		if err != nil {
			return nil, err
		}
		d, err := sim.Dial(ctx, addr, uid, ns, tok)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		devs = append(devs, d)
	}
	var uids []string
	publish := func(d *sim.Device, payload map[string]any) error {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		r, err := d.Publish(ctx, "devices/"+d.UID+"/events", b)
		if err != nil {
			return err
		}
		if r.Code != 0 {
			return fmt.Errorf("publish %s: code 0x%02x: %s", payload["uid"], r.Code, r.Reason)
		}
		uids = append(uids, payload["uid"].(string))
		return nil
	}
	for burst := 0; burst < 3; burst++ {
		for k := 0; k < 5; k++ {
			for _, d := range devs {
				if err := publish(d, d.Event(time.Now())); err != nil {
					return nil, err
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	// One reading the range analyzer tags, so that index rows with tags
	// are covered too.
	spike := devs[0].Event(time.Now())
	spike["uid"] = "fsck-spike"
	spike["items"] = []map[string]any{{"key": "temperature", "value": 150.5}}
	if err := publish(devs[0], spike); err != nil {
		return nil, err
	}

	ml := n.Master.Ledger()
	for _, uid := range uids {
		for {
			found, err := ml.Find(uid, "", 0)
			if err == nil && len(found) == 1 {
				if ok, err := ml.Final(found[0].At.Height); err != nil {
					return nil, err
				} else if ok {
					break
				}
			} else if err != nil {
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("event %s not final: %w", uid, ctx.Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, h := range n.Hubs {
		for h.Ledger().Height() < ml.Height() || h.PoolSize() > 0 {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s does not catch up: %w", h.ID(), ctx.Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if n.Master.PoolSize() != 0 {
		return nil, fmt.Errorf("master pool holds %d events after every event is final", n.Master.PoolSize())
	}
	fx := &fixture{dir: dir, net: n.Net, top: ml.Height(), events: len(uids), spike: "fsck-spike"}
	for _, d := range devs {
		_ = d.Close()
	}
	if err := n.Close(); err != nil {
		return nil, err
	}

	// Pick the fullest block below the top, and an entry in it.
	st, err := store.Open(ledger.StorePath(filepath.Join(dir, "master")), store.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	// Prefer a block with blocks on both sides, so links both ways are
	// exercised; block 0 only if no other will do.
	for _, from := range []uint64{1, 0} {
		for h := from; h+1 < fx.top; h++ {
			hdr, _, err := st.Header(h)
			if err != nil {
				return nil, err
			}
			if uint32(hdr.EntryCount) > fx.count {
				fx.h, fx.count = h, uint32(hdr.EntryCount)
			}
		}
		if fx.count >= 2 {
			break
		}
	}
	if fx.count < 2 {
		return nil, fmt.Errorf("no block below the top (height %d) has two entries", fx.top)
	}
	fx.i = 1
	raw, err := st.Entry(fx.h, fx.i)
	if err != nil {
		return nil, err
	}
	en, err := event.DecodeEntry(raw, event.DefaultLimits())
	if err != nil {
		return nil, err
	}
	fx.uid, fx.device, fx.hub = en.Event.UID, en.Event.DeviceUID, en.HubID
	return fx, nil
}

// checkDir runs what `cissan verify data` runs: fsck.Check on every node's
// store (opened read-only) and index, then fsck.Compare across nodes.
func checkDir(t *testing.T, dir string) []fsck.Problem {
	t.Helper()
	net, err := chain.LoadNetwork(filepath.Join(dir, "network.json"))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"master"}
	for _, h := range net.Hubs {
		nodes = append(nodes, h.ID)
	}
	var reports []*fsck.Report
	var problems []fsck.Problem
	for _, node := range nodes {
		nd := filepath.Join(dir, node)
		st, err := store.Open(ledger.StorePath(nd), store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		idx, err := index.Open(ledger.IndexPath(nd))
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		r, err := fsck.Check(context.Background(), node, st, idx, net, event.DefaultLimits())
		idx.Close()
		st.Close()
		if err != nil {
			t.Fatalf("check %s: %v", node, err)
		}
		reports = append(reports, r)
		problems = append(problems, r.Problems...)
	}
	return append(problems, fsck.Compare(reports)...)
}

// copyDir copies a data dir, so that each case tampers with its own.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy data dir: %v", err)
	}
	return dst
}

// Pebble keys (store package doc).
func blockKey(h uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'b'}, h) }

func entryKey(h uint64, i uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64([]byte{'e'}, h), i)
}

func uidKey(id string) []byte { return append([]byte{'u'}, id...) }

func validationKey(h uint64, hub string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{'v'}, h), hub...)
}

// rewrite replaces the value under key in node's Pebble store with what
// change makes of it.
func rewrite(t *testing.T, dir, node string, key []byte, change func(v []byte) []byte) {
	t.Helper()
	st, err := store.Open(ledger.StorePath(filepath.Join(dir, node)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, closer, err := st.DBFor(key).Get(key)
	if err != nil {
		t.Fatalf("%s: get %q: %v", node, key, err)
	}
	old := bytes.Clone(v)
	closer.Close()
	nv := change(bytes.Clone(old))
	if bytes.Equal(old, nv) {
		t.Fatalf("%s: tamper of %q changed nothing", node, key)
	}
	if err := st.DBFor(key).Set(key, nv, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// flip returns a change that flips the low bit of byte off (negative:
// counted from the end).
func flip(off int) func([]byte) []byte {
	return func(v []byte) []byte {
		if off < 0 {
			off += len(v)
		}
		v[off] ^= 0x01
		return v
	}
}

// execSQL runs statements on the file of node's index that holds block
// height.
func execSQL(t *testing.T, dir, node string, height uint64, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+index.FileFor(ledger.IndexPath(filepath.Join(dir, node)), height)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		res, err := db.Exec(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s: %d rows affected, want 1", s, n)
		}
	}
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestCheckPristineDataDir(t *testing.T) {
	fx := getPristine(t)
	dir := copyDir(t, fx.dir)
	if ps := checkDir(t, dir); len(ps) != 0 {
		t.Fatalf("pristine data dir: %d problems:\n%s", len(ps), problemList(ps))
	}
	// Every node holds the whole chain: otherwise Compare has nothing to
	// compare and the hub cases below prove nothing.
	for _, node := range []string{"master", "hub-1", "hub-2"} {
		st, err := store.Open(ledger.StorePath(filepath.Join(dir, node)), store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		h, err := st.Height()
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		if h != fx.top {
			t.Errorf("%s holds %d blocks, master %d", node, h, fx.top)
		}
	}
	t.Logf("%d events in %d blocks; tampering with block %d (%d entries), entry %d (uid %s, %s)", fx.events, fx.top, fx.h, fx.count, fx.i, fx.uid, fx.hub)
}

func problemList(ps []fsck.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	return b.String()
}

func TestCheckNamesEachTamper(t *testing.T) {
	fx := getPristine(t)
	h, i, uid := fx.h, fx.i, fx.uid
	id := event.ID(uid, fx.device)
	hubLen := len(fx.hub)
	// Offsets in the entry encoding (event package doc): version, hub_id,
	// received_ms, then uid.
	offReceivedLow := 1 + 4 + hubLen + 7
	offUIDLast := 1 + 4 + hubLen + 8 + 4 + len(uid) - 1
	// Header offsets (chain package doc).
	const offMintTimeLow, offEntriesRoot = 62 + 7, 78
	// Validation record: verdict (1) || block hash (32) || signature (64) || reason.
	const valHash, valSig = 1, 33
	rowID := func(h uint64, i uint32) int64 { return int64(h<<32 | uint64(i)) }
	// A digit of the uid becomes a letter: still a valid uid, and no other
	// event's.
	forgedUID := uid[:len(uid)-1] + string(uid[len(uid)-1]^0x40)

	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []string // each must be a substring of some problem
	}{
		{
			name:   "block header mint time",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "master", blockKey(h), flip(offMintTimeLow)) },
			want: []string{
				fmt.Sprintf("master: invalid: block %d: master signature does not verify", h),
				fmt.Sprintf("master: invalid: block %d: prev_hash", h+1),
				fmt.Sprintf("master: block %d: validation by hub-1 names another block hash", h),
				fmt.Sprintf("master: index: block row %d: hash differs from the chain", h),
				fmt.Sprintf("hub-1: block %d differs from master's", h),
			},
		},
		{
			name:   "block header entries_root",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "master", blockKey(h), flip(offEntriesRoot+5)) },
			want:   []string{fmt.Sprintf("master: invalid: block %d: master signature does not verify", h)},
		},
		{
			name:   "block header magic",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "master", blockKey(h), flip(0)) },
			want:   []string{fmt.Sprintf("master: block %d: cannot read", h), "malformed block header"},
		},
		{
			name:   "master signature",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "master", blockKey(h), flip(-1)) },
			want:   []string{fmt.Sprintf("master: invalid: block %d: master signature does not verify", h)},
		},
		{
			name:   "entry received_ms",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "master", entryKey(h, i), flip(offReceivedLow)) },
			want: []string{
				fmt.Sprintf("master: invalid: block %d: entries_root", h),
			},
		},
		{
			name: "entry uid",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, dir, "master", entryKey(h, i), func(v []byte) []byte { v[offUIDLast] ^= 0x40; return v })
			},
			want: []string{
				fmt.Sprintf("master: invalid: block %d: entries_root", h),
				fmt.Sprintf("master: block %d entry %d: uid record for %q: not found", h, i, event.ID(forgedUID, fx.device)),
				fmt.Sprintf("master: store: uid record for %q, which no entry of the chain holds", id),
			},
		},
		{
			name:   "entry of a hub",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "hub-2", entryKey(h, i), flip(offReceivedLow)) },
			want: []string{
				fmt.Sprintf("hub-2: invalid: block %d: entries_root", h),
			},
		},
		{
			name:   "validation signature",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "master", validationKey(h, "hub-1"), flip(valSig+10)) },
			want:   []string{fmt.Sprintf("master: block %d: invalid: validation by hub-1 of block %d: signature does not verify", h, h)},
		},
		{
			name:   "validation block hash",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "master", validationKey(h, "hub-2"), flip(valHash+3)) },
			want: []string{
				fmt.Sprintf("master: block %d: invalid: validation by hub-2 of block %d: signature does not verify", h, h),
				fmt.Sprintf("master: block %d: validation by hub-2 names another block hash", h),
			},
		},
		{
			name: "validation verdict",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, dir, "master", validationKey(h, "hub-1"), func(v []byte) []byte { v[0] = byte(chain.Reject); return v })
			},
			want: []string{fmt.Sprintf("master: block %d: invalid: validation by hub-1 of block %d: signature does not verify", h, h)},
		},
		{
			name: "validation by a hub, in a hub's store",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, dir, "hub-1", validationKey(h, "hub-1"), flip(valSig))
			},
			want: []string{fmt.Sprintf("hub-1: block %d: invalid: validation by hub-1 of block %d: signature does not verify", h, h)},
		},
		{
			name: "uid record points elsewhere",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, dir, "master", uidKey(id), func([]byte) []byte {
					return binary.AppendUvarint(binary.AppendUvarint(nil, h), uint64(i-1))
				})
			},
			want: []string{fmt.Sprintf("master: block %d entry %d: the uid record for %q lists this entry 0 times, at [{%d %d}]", h, i, id, h, i-1)},
		},
		{
			name: "uid record lists the entry twice",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, dir, "master", uidKey(id), func(v []byte) []byte { return append(v, v...) })
			},
			want: []string{
				fmt.Sprintf("master: block %d entry %d: the uid record for %q lists this entry 2 times", h, i, id),
				fmt.Sprintf("master: store: uid record for %q lists 2 entries; the chain holds 1", id),
			},
		},
		{
			name: "uid record malformed",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, dir, "master", uidKey(id), func(v []byte) []byte { return append(v, 0) })
			},
			want: []string{fmt.Sprintf("master: block %d entry %d: uid record for %q: malformed entry index", h, i, id)},
		},
		{
			name: "index ts",
			tamper: func(t *testing.T, dir string) {
				execSQL(t, dir, "master", h, fmt.Sprintf("UPDATE events SET ts = ts + 1 WHERE id = %d", rowID(h, i)))
			},
			want: []string{fmt.Sprintf("master: index: block %d entry %d (uid %q): timestamp", h, i, uid)},
		},
		{
			name: "index row deleted",
			tamper: func(t *testing.T, dir string) {
				execSQL(t, dir, "master", h, fmt.Sprintf("DELETE FROM events WHERE id = %d", rowID(h, i)))
			},
			want: []string{fmt.Sprintf("master: index: block %d entry %d (uid %q): row missing", h, i, uid)},
		},
		{
			name: "index row inserted in a block",
			tamper: func(t *testing.T, dir string) {
				execSQL(t, dir, "master", h, fmt.Sprintf("INSERT INTO events (id, ts) SELECT %d, ts FROM events WHERE id = %d",
					rowID(h, fx.count+3), rowID(h, i)))
			},
			want: []string{fmt.Sprintf("master: index: block %d entry %d: row has no entry in the chain", h, fx.count+3)},
		},
		{
			name: "index row inserted beyond the chain",
			tamper: func(t *testing.T, dir string) {
				execSQL(t, dir, "master", h, fmt.Sprintf("INSERT INTO events (id, ts) SELECT %d, ts FROM events WHERE id = %d",
					rowID(fx.top+2, 0), rowID(h, i)))
			},
			want: []string{fmt.Sprintf("master: index: row at block %d entry 0 is beyond the chain", fx.top+2)},
		},
		{
			name: "index block row tagged",
			tamper: func(t *testing.T, dir string) {
				execSQL(t, dir, "master", h, fmt.Sprintf("UPDATE blocks SET tagged = tagged + 1 WHERE height = %d", h))
			},
			want: []string{fmt.Sprintf("master: index: block row %d: tagged", h)},
		},
		{
			name: "index block row hash",
			tamper: func(t *testing.T, dir string) {
				execSQL(t, dir, "hub-2", h, fmt.Sprintf("UPDATE blocks SET hash = zeroblob(32) WHERE height = %d", h))
			},
			want: []string{fmt.Sprintf("hub-2: index: block row %d: hash differs from the chain", h)},
		},
		{
			name: "index block row mint time",
			tamper: func(t *testing.T, dir string) {
				execSQL(t, dir, "master", h, fmt.Sprintf("UPDATE blocks SET mint_time_ms = mint_time_ms + 1 WHERE height = %d", h))
			},
			want: []string{fmt.Sprintf("master: index: block row %d: mint_time_ms", h)},
		},
		{
			name: "index block row entry count",
			tamper: func(t *testing.T, dir string) {
				execSQL(t, dir, "master", h, fmt.Sprintf("UPDATE blocks SET entry_count = entry_count + 1 WHERE height = %d", h))
			},
			want: []string{fmt.Sprintf("master: index: block row %d: entry_count", h)},
		},
		{
			name:   "hub block differs from master's",
			tamper: func(t *testing.T, dir string) { rewrite(t, dir, "hub-1", blockKey(h), flip(offMintTimeLow)) },
			want: []string{
				fmt.Sprintf("hub-1: block %d differs from master's", h),
				fmt.Sprintf("hub-1: invalid: block %d: master signature does not verify", h),
			},
		},
		{
			// A fork that checks out on its own: the hub's top block is
			// re-signed with the master key (as a master equivocating would).
			// Only the comparison between nodes, and the hub's own index and
			// validations, can tell.
			name: "hub holds a re-signed fork of the top block",
			tamper: func(t *testing.T, dir string) {
				resignTop(t, dir, "hub-1", fx.top-1)
			},
			want: []string{
				fmt.Sprintf("hub-1: block %d differs from master's", fx.top-1),
				fmt.Sprintf("hub-1: index: block row %d: hash differs from the chain", fx.top-1),
				fmt.Sprintf("hub-1: block %d: validation by hub-2 names another block hash", fx.top-1),
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, fx.dir)
			c.tamper(t, dir)
			ps := checkDir(t, dir)
			if len(ps) == 0 {
				t.Fatal("tampered data dir: no problem found")
			}
			all := problemList(ps)
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("no problem says %q; found:\n%s", w, all)
				}
			}
			if t.Failed() {
				return
			}
			t.Logf("%d problems, e.g. %s", len(ps), ps[0])
		})
	}
}

// resignTop replaces block h (the top) in node's store by the same block
// with another mint time, sealed with the master's key from the data dir.
func resignTop(t *testing.T, dir, node string, h uint64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "master", "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	st, err := store.Open(ledger.StorePath(filepath.Join(dir, node)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if top, err := st.Height(); err != nil || top != h+1 {
		t.Fatalf("%s height %d (%v), want %d", node, top, err, h+1)
	}
	blk, err := st.Block(h)
	if err != nil {
		t.Fatal(err)
	}
	hdr := blk.Header
	hdr.MintTimeMs++
	forged := chain.Seal(hdr, blk.Entries, blk.Controls, key)
	if forged.Header.Hash() == blk.Header.Hash() {
		t.Fatal("forged block has the original hash")
	}
	rec := append(forged.Header.Encode(), forged.Signature...)
	if err := st.DB().Set(blockKey(h), rec, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// The fork checks out on its own.
	net, err := chain.LoadNetwork(filepath.Join(dir, "network.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(net.MasterKey, chain.BlockMessage(forged.Header.Hash()), forged.Signature) {
		t.Fatal("forged block's signature does not verify under the network's master key")
	}
}

// TestVerifyDataCommand runs `cissan verify data` through cli.Run: success
// with OK on a pristine copy, an error with PROBLEM lines naming the
// tamper on a tampered one.
func TestVerifyDataCommand(t *testing.T) {
	fx := getPristine(t)
	ctx := context.Background()

	dir := copyDir(t, fx.dir)
	var out, errOut bytes.Buffer
	if err := cli.Run(ctx, []string{"verify", "data", "--data-dir", dir}, &out, &errOut); err != nil {
		t.Fatalf("verify data on a pristine data dir: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	if !strings.Contains(out.String(), "OK") || strings.Contains(out.String(), "PROBLEM") {
		t.Fatalf("verify data on a pristine data dir:\n%s", &out)
	}
	for _, node := range []string{"master", "hub-1", "hub-2"} {
		want := fmt.Sprintf("%s: %d blocks, %d entries checked", node, fx.top, fx.events)
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}

	bad := copyDir(t, fx.dir)
	rewrite(t, bad, "master", blockKey(fx.h), flip(-1))
	out.Reset()
	errOut.Reset()
	err := cli.Run(ctx, []string{"verify", "data", "--data-dir", bad}, &out, &errOut)
	if err == nil {
		t.Fatalf("verify data on a tampered data dir succeeded:\n%s", &out)
	}
	want := fmt.Sprintf("PROBLEM master: invalid: block %d: master signature does not verify", fx.h)
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, &out)
	}
	if strings.Contains(out.String(), "OK") {
		t.Errorf("output of a failed check says OK:\n%s", &out)
	}
	t.Logf("error: %v", err)

	// --node checks only the named node: a hub's copy is untouched.
	out.Reset()
	if err := cli.Run(ctx, []string{"verify", "data", "--data-dir", bad, "--node", "hub-1"}, &out, &errOut); err != nil {
		t.Errorf("verify data --node hub-1 on a data dir tampered only on the master: %v\n%s", err, &out)
	}
}

// TestDeletedValidationLeavesBlockNotFinal: deleting a hub's validation
// from the master's store breaks nothing that can be checked for
// integrity, but the block is then listed as lacking its quorum.
func TestDeletedValidationLeavesBlockNotFinal(t *testing.T) {
	f := getPristine(t)
	masterReport := func(dir string) *fsck.Report {
		st, err := store.Open(ledger.StorePath(filepath.Join(dir, "master")), store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		idx, err := index.Open(ledger.IndexPath(filepath.Join(dir, "master")))
		if err != nil {
			t.Fatal(err)
		}
		defer idx.Close()
		r, err := fsck.Check(context.Background(), "master", st, idx, f.net, event.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := masterReport(f.dir); len(r.NotFinal) != 0 {
		t.Fatalf("pristine master lists blocks %v as not final", r.NotFinal)
	}
	dir := copyDir(t, f.dir)
	st, err := store.Open(ledger.StorePath(filepath.Join(dir, "master")), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DB().Delete(validationKey(f.h, f.hub), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r := masterReport(dir)
	if len(r.NotFinal) != 1 || r.NotFinal[0] != f.h {
		t.Fatalf("after deleting %s's validation of block %d: not final %v", f.hub, f.h, r.NotFinal)
	}
}

// TestCheckAccountsForEveryRecord: records outside the blocks are checked
// too, since a stray one changes what a node does.
func TestCheckAccountsForEveryRecord(t *testing.T) {
	f := getPristine(t)
	put := func(dir, node string, key, val []byte) {
		st, err := store.Open(ledger.StorePath(filepath.Join(dir, node)), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.DBFor(key).Set(key, val, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, node string
		key, val   []byte
		want       string
	}{
		{"uid record for an event not yet sent", "hub-1", uidKey("victim-1/dev-9"), []byte{1, 0}, `uid record for "victim-1/dev-9", which no entry`},
		{"control record above the chain", "master", binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64([]byte{'c'}, f.top+5), 0), []byte{1, 1, 0, 0, 0, 2, '{', '}'}, "beyond the chain"},
		{"arrival order without a pool record", "master", binary.BigEndian.AppendUint64([]byte{'q'}, 1<<40), []byte("ghost"), `arrival-order record for "ghost"`},
		{"pool record without arrival order", "master", []byte("pghost"), []byte{1}, `"ghost" has no arrival-order record`},
		{"unknown metadata", "hub-2", []byte("mevil"), []byte{1}, `unknown metadata "evil"`},
		{"unknown key", "hub-2", []byte("zz"), []byte{1}, "unknown record key"},
		// Entries have a database of their own (see package store).
		{"entry above the chain", "hub-2", entryKey(f.top+5, 0), []byte("x"), "beyond the chain"},
		{"malformed entry key", "master", []byte("ezz"), []byte("x"), "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, f.dir)
			put(dir, c.node, c.key, c.val)
			ps := checkDir(t, dir)
			for _, p := range ps {
				if p.Node == c.node && strings.Contains(p.What, c.want) {
					return
				}
			}
			t.Fatalf("no problem naming %q on %s among:\n%s", c.want, c.node, problemList(ps))
		})
	}
}
