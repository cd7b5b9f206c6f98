// Package synth builds a real node data directory holding many events,
// fast, so that benchmarks can measure what a node does with a big chain
// (proofs, catch-up, explorer pages) without first pushing millions of
// events through MQTT.
//
// The chain it writes is a real one: blocks sealed and signed by the
// master's key, every block accepted by every hub with a signature of that
// hub's key, stored and indexed through the same ledger code the master
// uses (Pebble and SQLite), under the same layout as a `cissan up` data
// dir:
//
//	DIR/network.json
//	DIR/master/master.key, DIR/master/chain/, DIR/master/index.db
//	DIR/hub-N/hub.key (the hubs' own stores are left empty)
//	DIR/synth.json    what was built; written last
//
// Only the path of an event differs: blocks are minted straight from
// generated entries, with no pool, no MQTT and no bus, and are much larger
// than a live network's (Options.PerBlock). Events look like a fleet's:
// random UUID uids, Options.Devices devices over a few namespaces, three
// sensor readings each. No analyzer is configured, so entries carry no
// tags.
//
// Building ten million events takes several minutes, so Build reuses a
// directory that already holds what was asked for; ForBenchmark keeps one
// per size under $CISSAN_SYNTH_DIR across benchmark runs.
package synth

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/identity"
	"cissan/internal/ledger"
	"cissan/internal/store"
)

// Options shape the chain. The zero value is usable.
type Options struct {
	PerBlock int // entries per block; default 10,000
	Devices  int // default 5,000
	Hubs     int // hubs in the network, each accepting every block; default 1
	// Submitters is how many of the hubs (the first ones) the entries
	// name as the hub that took them in; default all. A hub that names
	// none can catch up on the chain as a hub enrolled later would.
	Submitters int
	// Progress, if set, is told how far the build is now and then.
	Progress func(events, blocks int, elapsed time.Duration)
}

// storeFormat counts changes to what a stored chain holds; 2 added the
// chunk roots of big blocks, 3 moved entries to a database of their own.
const storeFormat = 3

func (o *Options) defaults() {
	if o.PerBlock <= 0 {
		o.PerBlock = 10_000
	}
	if o.Devices <= 0 {
		o.Devices = 5_000
	}
	if o.Hubs <= 0 {
		o.Hubs = 1
	}
	if o.Submitters <= 0 || o.Submitters > o.Hubs {
		o.Submitters = o.Hubs
	}
}

// Info describes a built directory. It is what DIR/synth.json holds.
type Info struct {
	Dir        string         `json:"-"`
	Events     int            `json:"events"`
	Blocks     int            `json:"blocks"`
	PerBlock   int            `json:"per_block"`
	Devices    int            `json:"devices"`
	Hubs       int            `json:"hubs"`
	Submitters int            `json:"submitters"`
	Seconds    float64        `json:"build_seconds"` // how long the build took
	Network    *chain.Network `json:"-"`
	MasterDir  string         `json:"-"` // the master's ledger directory (ledger.Open's Dir)
	// Samples are uids of events spread evenly over the chain, to look
	// up or prove.
	Samples []string `json:"samples"`
	Reused  bool     `json:"-"` // Build found it already built
}

// Build makes dir a node data directory holding n events, or reuses it if
// it already holds exactly that (same n and options); anything else in dir
// is removed first.
func Build(ctx context.Context, dir string, n int, o Options) (*Info, error) {
	o.defaults()
	if n < 1 {
		return nil, errors.New("synth: need at least one event")
	}
	if info, err := load(dir); err == nil && info.Events == n && info.PerBlock == o.PerBlock && info.Devices == o.Devices && info.Hubs == o.Hubs && info.Submitters == o.Submitters {
		info.Reused = true
		return info, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("synth: clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "master"), 0o700); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	start := time.Now()
	mkey, err := identity.LoadOrCreateKey(filepath.Join(dir, "master", "master.key"))
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	hubKeys := make([]ed25519.PrivateKey, o.Hubs)
	hubs := make([]chain.HubInfo, o.Hubs)
	for i := range hubs {
		id := fmt.Sprintf("hub-%d", i+1)
		if hubKeys[i], err = identity.LoadOrCreateKey(filepath.Join(dir, id, "hub.key")); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
		hubs[i] = chain.HubInfo{ID: id, PublicKey: hubKeys[i].Public().(ed25519.PublicKey)}
	}
	net, err := identity.LoadOrCreateNetwork(filepath.Join(dir, "network.json"), mkey.Public().(ed25519.PublicKey), hubs)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	info := &Info{Dir: dir, Events: n, PerBlock: o.PerBlock, Devices: o.Devices, Hubs: o.Hubs, Submitters: o.Submitters, Network: net, MasterDir: filepath.Join(dir, "master")}
	led, err := ledger.Open(ctx, ledger.Config{Dir: info.MasterDir, Network: net, Limits: event.DefaultLimits(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	g := newGen(o.Devices)
	const samples = 64
	every := max(1, n/samples)
	mint := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for done := 0; done < n; {
		if err := ctx.Err(); err != nil {
			led.Close()
			return nil, err
		}
		size := min(o.PerBlock, n-done)
		entries := make([]*event.Entry, size)
		raws := make([][]byte, size)
		for i := range entries {
			en := g.entry(hubs[(done+i)%o.Submitters].ID, mint)
			if (done+i)%every == 0 && len(info.Samples) < samples {
				info.Samples = append(info.Samples, en.Event.UID)
			}
			entries[i], raws[i] = en, en.Encode()
		}
		x := led.Expect()
		blk := chain.Seal(chain.Header{Network: x.Network, Height: x.Height, Prev: x.Prev, MintTimeMs: mint, HistoryRoot: x.HistoryRoot}, raws, nil, mkey)
		hash := blk.Header.Hash()
		err := led.Append(ctx, blk, entries, func(b *store.Batch) error {
			for i, h := range hubs {
				v := &chain.Validation{HubID: h.ID, Height: blk.Header.Height, BlockHash: hash, Verdict: chain.Accept}
				v.Sign(net.ID, hubKeys[i])
				if err := b.PutValidation(v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			led.Close()
			return nil, fmt.Errorf("synth: %w", err)
		}
		done += size
		info.Blocks++
		mint += 1000
		if o.Progress != nil && (info.Blocks%50 == 0 || done == n) {
			o.Progress(done, info.Blocks, time.Since(start))
		}
	}
	// Close indexes every block before it returns.
	if err := led.Close(); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	info.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "synth.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "synth.json")); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	return info, nil
}

// load reads a built directory's description.
func load(dir string) (*Info, error) {
	b, err := os.ReadFile(filepath.Join(dir, "synth.json"))
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("synth: %s: %w", dir, err)
	}
	if info.Network, err = chain.LoadNetwork(filepath.Join(dir, "network.json")); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	info.Dir, info.MasterDir = dir, filepath.Join(dir, "master")
	return &info, nil
}

// EnvDir names the environment variable that ForBenchmark reads.
const EnvDir = "CISSAN_SYNTH_DIR"

// ForBenchmark returns a chain of n events built (or reused) under
// $CISSAN_SYNTH_DIR, in a subdirectory named for n and the options. It
// skips tb when the variable is unset or when the test binary is not
// running benchmarks, so that `go test ./...` never spends minutes on a
// build. Run for instance:
//
//	CISSAN_SYNTH_DIR=/var/tmp/cissan-synth go test -run XXX -bench Proof10M ./internal/synth/
func ForBenchmark(tb testing.TB, n int, o Options) *Info {
	tb.Helper()
	root := os.Getenv(EnvDir)
	if root == "" {
		tb.Skipf("set %s to a directory to build (once) and keep a chain of %d events there", EnvDir, n)
	}
	if _, ok := tb.(*testing.B); !ok {
		tb.Skipf("synth chains are for benchmarks")
	}
	o.defaults()
	// The store format is in the name, so that a chain cached by an
	// older build (before chunk roots, say) is built anew.
	dir := filepath.Join(root, fmt.Sprintf("n%d-b%d-d%d-h%d-s%d-f%d", n, o.PerBlock, o.Devices, o.Hubs, o.Submitters, storeFormat))
	if o.Progress == nil {
		o.Progress = func(events, blocks int, elapsed time.Duration) {
			tb.Logf("synth: %d events in %d blocks, %v", events, blocks, elapsed.Round(time.Second))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "synth.json")); errors.Is(err, fs.ErrNotExist) {
		tb.Logf("synth: building %d events in %s (kept for later runs)", n, dir)
	}
	info, err := Build(context.Background(), dir, n, o)
	if err != nil {
		tb.Fatal(err)
	}
	return info
}

// gen makes a fleet's events: random UUIDs, devices over a few
// namespaces, temperature, humidity and battery drifting per device.
type gen struct {
	rng     *rand.Rand
	devices []device
	seq     int64
}

type device struct {
	uid, ns   string
	temp, hum float64
}

func newGen(n int) *gen {
	g := &gen{rng: rand.New(rand.NewPCG(1, 2))}
	for i := range n {
		g.devices = append(g.devices, device{uid: fmt.Sprintf("dev-%05d", i), ns: "synth/site" + strconv.Itoa(i%20), temp: 21, hum: 45})
	}
	return g
}

func (g *gen) uuid() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], g.rng.Uint64())
	binary.LittleEndian.PutUint64(b[8:], g.rng.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (g *gen) entry(hub string, mintMs int64) *event.Entry {
	g.seq++
	d := &g.devices[g.rng.IntN(len(g.devices))]
	d.temp += g.rng.NormFloat64() * 0.2
	d.hum = math.Max(0, math.Min(100, d.hum+g.rng.NormFloat64()*0.5))
	num := func(f float64) event.Value { return event.Value{Kind: event.KindNumber, Num: f} }
	ts := mintMs - 1000 + int64(g.rng.IntN(1000))
	return &event.Entry{
		Event: event.Event{
			UID:       g.uuid(),
			Timestamp: ts,
			Items: []event.Item{
				{Key: "temperature", Value: num(math.Round(d.temp*100) / 100)},
				{Key: "humidity", Value: num(math.Round(d.hum*10) / 10)},
				{Key: "battery", Value: num(math.Round(math.Max(0, 100-float64(g.seq)*1e-6)*10) / 10)},
			},
			Namespace: d.ns,
			DeviceUID: d.uid,
		},
		HubID:      hub,
		ReceivedMs: ts + 5,
	}
}
