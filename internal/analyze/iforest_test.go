package analyze

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"cissan/internal/event"
	"cissan/internal/iforest"
)

// ifStream is a synthetic chain: blocks of sensor events from several
// devices with two numeric keys, a string item, events of a second
// namespace, and temperature spikes injected at known places. It uses only
// Rand and basic arithmetic, so it is the same on every platform.
type ifStream struct {
	blocks []Block
	spike  map[*event.Entry]bool // entries whose temperature is a spike
}

func ifBlockHash(h uint64) [32]byte {
	return sha256.Sum256(binary.BigEndian.AppendUint64([]byte("block"), h))
}

func newIFStream(nblocks, perBlock int) *ifStream {
	r := iforest.NewRand(sha256.Sum256([]byte("iforest analyzer stream")))
	noise := func() float64 { // roughly normal, mean 0, sd 0.58
		return r.Float64() + r.Float64() + r.Float64() + r.Float64() - 2
	}
	s := &ifStream{spike: map[*event.Entry]bool{}}
	devices := []string{"d0", "d1", "d2", "d3"}
	n := 0
	for h := range uint64(nblocks) {
		b := Block{Height: h, Hash: ifBlockHash(h)}
		for i := range perBlock {
			dev := devices[i%len(devices)]
			ns := "acme/plant"
			if i == perBlock-1 {
				ns = "other/site"
			}
			temp := 20 + float64(i%len(devices)) + noise()
			hum := 45 + 3*noise()
			spike := n%151 == 150
			if spike {
				temp += 12 + 4*r.Float64()
			}
			n++
			en := &event.Entry{Event: event.Event{
				UID: fmt.Sprintf("e%d", n), Timestamp: int64(n), Namespace: ns, DeviceUID: dev,
				Items: []event.Item{
					{Key: "status", Value: event.Value{Kind: event.KindString, Str: "ok"}},
					{Key: "temperature", Value: event.Value{Kind: event.KindNumber, Num: temp}},
					{Key: "humidity", Value: event.Value{Kind: event.KindNumber, Num: hum}},
				},
			}}
			if spike {
				s.spike[en] = true
			}
			b.Entries = append(b.Entries, en)
		}
		s.blocks = append(s.blocks, b)
	}
	return s
}

// run drives an analyzer through the stream as master and hubs do: the
// tags of block h's entries under the state after blocks 0..h-1, then
// Apply(h). It returns every entry's tags, in order. yield, if not nil, is
// called between steps to perturb scheduling.
func (s *ifStream) run(a Analyzer, yield func(i int)) [][]event.Tag {
	var out [][]event.Tag
	i := 0
	for _, b := range s.blocks {
		for _, en := range b.Entries {
			out = append(out, a.Tags(&en.Event))
			if yield != nil {
				yield(i)
			}
			i++
		}
		a.Apply(b)
	}
	return out
}

func ifDigest(tags [][]event.Tag) string {
	h := sha256.New()
	for i, ts := range tags {
		for _, t := range ts {
			fmt.Fprintf(h, "%d|%s|%s|%s|%s|%d\n", i, t.Analyzer, t.Key, t.Label, t.Model, t.Score)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func mustIForest(t testing.TB, c IForestConfig) *IForest {
	t.Helper()
	a, err := NewIForest(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var ifTestConfigs = []struct {
	name   string
	cfg    IForestConfig
	pinned string // digest of every tag of the stream; the same on every platform and build
}{
	{"per key", IForestConfig{Keys: []string{"temperature", "humidity"}, RetrainEvery: 25},
		"02b814fe1eaae23a78a27418b1aa785513411b976b4fecb14d9c658700ed2c31"},
	{"per device", IForestConfig{Namespace: "acme/plant", Keys: []string{"temperature"}, PerDevice: true,
		Window: 512, MinTrain: 128, RetrainEvery: 40, Trees: 50, Contamination: 0.02},
		"97525549fba9654b9c607be3774a6a99bb8072f20060d9c29f4760225a81d8a9"},
}

// TestIForestDeterminism is the hubs' agreement in one process: the same
// stream fed to two analyzers, one from the test goroutine and one from
// another goroutine that yields often and runs under changing GOMAXPROCS,
// gives identical tags, scores included. The digest of those tags is
// pinned, so that a build with -race and one without, or another
// platform, must produce the very same tags too.
func TestIForestDeterminism(t *testing.T) {
	s := newIFStream(300, 8)
	for _, c := range ifTestConfigs {
		t.Run(c.name, func(t *testing.T) {
			a, b := mustIForest(t, c.cfg), mustIForest(t, c.cfg)
			procs := runtime.GOMAXPROCS(0)
			done := make(chan [][]event.Tag)
			go func() {
				defer runtime.GOMAXPROCS(procs)
				done <- s.run(b, func(i int) {
					switch {
					case i%7 == 0:
						runtime.Gosched()
					case i == 500:
						runtime.GOMAXPROCS(1)
					case i == 1500:
						runtime.GOMAXPROCS(procs + 3)
					}
				})
			}()
			got := s.run(a, nil)
			other := <-done
			tagged := 0
			for i := range got {
				if !Equal(got[i], other[i]) {
					t.Fatalf("entry %d: tags %v on one schedule, %v on another", i, got[i], other[i])
				}
				tagged += len(got[i])
			}
			if tagged == 0 {
				t.Fatal("no tags at all: the test proves nothing")
			}
			d := ifDigest(got)
			t.Logf("%d tags, digest %s", tagged, d)
			if d != c.pinned {
				t.Errorf("tag digest %s, pinned %s", d, c.pinned)
			}
		})
	}
}

// TestIForestBlockHashSeedsModel: the same values under another block hash
// at the training height give another model, hence other scores.
func TestIForestBlockHashSeedsModel(t *testing.T) {
	cfg := IForestConfig{Keys: []string{"temperature"}, RetrainEvery: 50, Threshold: 0.3}
	s := newIFStream(100, 8)
	a := mustIForest(t, cfg)
	want := s.run(a, nil)
	s.blocks[49].Hash[0] ^= 1
	b := mustIForest(t, cfg)
	got := s.run(b, nil)
	differ := 0
	for i := range got {
		if i < 51*8 && !Equal(got[i], want[i]) {
			t.Fatalf("entry %d: tags differ before the changed block took effect", i)
		}
		if !Equal(got[i], want[i]) {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("a changed block hash left every score unchanged")
	}
	if !strings.HasPrefix(want[51*8][0].Model, "h49") {
		t.Fatalf("model version %q, want h49", want[51*8][0].Model)
	}
}

// TestIForestTagsSpikes: nothing is tagged before the first training; after
// it, spikes are tagged and ordinary values mostly not.
func TestIForestTagsSpikes(t *testing.T) {
	s := newIFStream(300, 8)
	a := mustIForest(t, IForestConfig{Keys: []string{"temperature", "humidity"}, RetrainEvery: 20})
	tags := s.run(a, nil)
	var spikes, spikesTagged, normal, normalTagged int
	i := 0
	for h, b := range s.blocks {
		for _, en := range b.Entries {
			ts := tags[i]
			i++
			if h < 41 || en.Event.Namespace != "acme/plant" {
				// acme/plant's models are first trained at h=39 (MinTrain
				// 256) and score from h=41; other/site gets one value per
				// block, too few.
				if h < 41 && len(ts) > 0 {
					t.Fatalf("block %d: tags %v before any model was trained", h, ts)
				}
				continue
			}
			hot := false
			for _, tg := range ts {
				if tg.Analyzer != "iforest" || tg.Label != "anomaly" || tg.Score < 650_000 || tg.Score > 1_000_000 || !strings.HasPrefix(tg.Model, "h") {
					t.Fatalf("bad tag %+v", tg)
				}
				if tg.Key == "temperature" {
					hot = true
				}
			}
			if s.spike[en] {
				spikes++
				if hot {
					spikesTagged++
				}
			} else {
				normal++
				if hot {
					normalTagged++
				}
			}
		}
	}
	t.Logf("spikes tagged %d/%d, ordinary values tagged %d/%d", spikesTagged, spikes, normalTagged, normal)
	if spikesTagged < spikes {
		t.Errorf("only %d of %d spikes tagged", spikesTagged, spikes)
	}
	if normalTagged > normal/50 {
		t.Errorf("%d of %d ordinary values tagged", normalTagged, normal)
	}
}

func ifEvent(ns, dev, key string, v float64) *event.Event {
	return &event.Event{Namespace: ns, DeviceUID: dev, Items: []event.Item{{Key: key, Value: event.Value{Kind: event.KindNumber, Num: v}}}}
}

func ifBlock(h uint64, evs ...*event.Event) Block {
	b := Block{Height: h, Hash: ifBlockHash(h)}
	for _, ev := range evs {
		b.Entries = append(b.Entries, &event.Entry{Event: *ev})
	}
	return b
}

// TestIForestContamination: with contamination c, about a fraction c of
// the training window's own values score at or above the threshold.
func TestIForestContamination(t *testing.T) {
	a := mustIForest(t, IForestConfig{Keys: []string{"v"}, Window: 1000, MinTrain: 1000, RetrainEvery: 1, Contamination: 0.1})
	r := iforest.NewRand([32]byte{5})
	var evs []*event.Event
	for range 1000 {
		evs = append(evs, ifEvent("a/b", "d", "v", r.Float64()+r.Float64()))
	}
	a.Apply(ifBlock(0, evs...))
	a.Apply(ifBlock(1)) // puts the model fitted at 0 in force
	tagged := 0
	for _, ev := range evs {
		tagged += len(a.Tags(ev))
	}
	if tagged < 90 || tagged > 110 {
		t.Fatalf("%d of 1000 training values tagged with contamination 0.1", tagged)
	}
	m := a.models[ifModelKey{ns: "a/b", key: "v"}]
	if m.version != "h0" || m.threshold <= 0.3 || m.threshold >= 0.8 {
		t.Fatalf("model %q, threshold %v", m.version, m.threshold)
	}
}

func TestIForestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {1, 5}, {0.5, 3}, {0.9, 4.6}, {0.95, 4.8}} {
		if got := quantile(s, c.q); got != c.want && (got-c.want > 1e-12 || c.want-got > 1e-12) {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestIForestBounds: windows keep the latest Window values in order; the
// model cap turns away new keys, on every node alike; other namespaces,
// keys, kinds and non-finite values are ignored.
func TestIForestBounds(t *testing.T) {
	a := mustIForest(t, IForestConfig{Namespace: "a/b", Keys: []string{"v"}, PerDevice: true, Window: 100, MinTrain: 50, RetrainEvery: 1000, MaxModels: 2, Threshold: 0.01})
	var evs []*event.Event
	for i := range 5000 {
		evs = append(evs, ifEvent("a/b", fmt.Sprintf("d%d", i%3), "v", float64(i)))
	}
	evs = append(evs, ifEvent("x/y", "d0", "v", 1), ifEvent("a/b", "d9", "w", 1),
		&event.Event{Namespace: "a/b", DeviceUID: "d0", Items: []event.Item{{Key: "v", Value: event.Value{Kind: event.KindString, Str: "1"}}}})
	a.Apply(ifBlock(0, evs...))
	if len(a.models) != 2 || len(a.sorted) != 2 {
		t.Fatalf("%d models (%v), want the cap of 2", len(a.models), a.sorted)
	}
	m := a.models[ifModelKey{ns: "a/b", key: "v", dev: "d0"}]
	rows := m.rows()
	if len(m.win) != 100 || len(rows) != 100 || rows[0][0] != 4701 || rows[99][0] != 4998 {
		t.Fatalf("window holds %d values, %v .. %v", len(m.win), rows[0], rows[len(rows)-1])
	}
	if a.models[ifModelKey{ns: "a/b", key: "v", dev: "d2"}] != nil {
		t.Fatal("a model beyond the cap was created")
	}
	a.Apply(ifBlock(999))
	a.Apply(ifBlock(1000)) // puts the model fitted at 999 in force
	if m.forest == nil || m.version != "h999" {
		t.Fatalf("model not trained at h999: %q", m.version)
	}
	if tags := a.Tags(ifEvent("a/b", "d2", "v", 1e9)); tags != nil {
		t.Fatalf("a device beyond the cap was tagged: %v", tags)
	}
	if tags := a.Tags(ifEvent("x/y", "d0", "v", 1e9)); tags != nil {
		t.Fatalf("another namespace was tagged: %v", tags)
	}
	if tags := a.Tags(ifEvent("a/b", "d0", "v", 1e9)); len(tags) != 1 || tags[0].Model != "h999" || tags[0].Key != "v" {
		t.Fatalf("a value over the threshold got tags %v", tags)
	}
}

func TestIForestValidate(t *testing.T) {
	ok := IForestConfig{Keys: []string{"temperature"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		field string
		cfg   IForestConfig
	}{
		{"keys", IForestConfig{}},
		{"keys[1]", IForestConfig{Keys: []string{"a", ""}}},
		{"keys[1]", IForestConfig{Keys: []string{"a", "a"}}},
		{"namespace", IForestConfig{Namespace: "nogroup", Keys: []string{"a"}}},
		{"trees", IForestConfig{Keys: []string{"a"}, Trees: -1}},
		{"trees", IForestConfig{Keys: []string{"a"}, Trees: 5000}},
		{"sample_size", IForestConfig{Keys: []string{"a"}, SampleSize: 1}},
		{"sample_size", IForestConfig{Keys: []string{"a"}, Window: 100, SampleSize: 200}},
		{"window", IForestConfig{Keys: []string{"a"}, Window: -5}},
		{"window", IForestConfig{Keys: []string{"a"}, Window: 1}},
		{"min_train", IForestConfig{Keys: []string{"a"}, Window: 100, MinTrain: 101}},
		{"min_train", IForestConfig{Keys: []string{"a"}, MinTrain: 1}},
		{"threshold", IForestConfig{Keys: []string{"a"}, Threshold: 1.5}},
		{"threshold", IForestConfig{Keys: []string{"a"}, Threshold: -0.1}},
		{"contamination", IForestConfig{Keys: []string{"a"}, Contamination: 0.6}},
		{"threshold", IForestConfig{Keys: []string{"a"}, Threshold: 0.7, Contamination: 0.1}},
		{"max_models", IForestConfig{Keys: []string{"a"}, MaxModels: -1}},
	}
	for _, c := range bad {
		err := c.cfg.Validate()
		if !errors.Is(err, ErrIForestConfig) || !strings.Contains(err.Error(), ": "+c.field+": ") {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", c.cfg, err, c.field)
		}
		if _, err := NewIForest(c.cfg); err == nil {
			t.Errorf("NewIForest(%+v) accepted a bad config", c.cfg)
		}
	}
	a := mustIForest(t, IForestConfig{Keys: []string{"a"}, Window: 100})
	if c := a.Config(); c.Trees != 100 || c.SampleSize != 100 || c.MinTrain != 100 || c.RetrainEvery != 10 || c.Threshold != 0.65 || c.MaxModels != 1000 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestIForestConfigJSON(t *testing.T) {
	c := IForestConfig{Namespace: "acme/plant", Keys: []string{"temperature", "humidity"}, PerDevice: true, Trees: 50,
		SampleSize: 128, Window: 1024, MinTrain: 200, RetrainEvery: 5, Contamination: 0.05, MaxModels: 20}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back IForestConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip: %+v, want %+v", back, c)
	}
	const doc = `{"namespace":"acme/plant","keys":["temperature","humidity"],"per_device":true,"trees":50,"sample_size":128,"window":1024,"min_train":200,"retrain_every":5,"contamination":0.05,"max_models":20}`
	if string(b) != doc {
		t.Fatalf("JSON %s\nwant %s", b, doc)
	}
	if b, _ := json.Marshal(IForestConfig{Keys: []string{"t"}}); string(b) != `{"keys":["t"]}` {
		t.Fatalf("defaults marshal as %s", b)
	}
}

// BenchmarkIForestTags measures Tags at steady state: one key, a model
// trained on a full window, events of one item.
func BenchmarkIForestTags(b *testing.B) {
	a := mustIForest(b, IForestConfig{Keys: []string{"temperature"}, RetrainEvery: 1})
	r := iforest.NewRand([32]byte{1})
	var evs []*event.Event
	for i := range 2048 {
		v := 20 + r.Float64() + r.Float64() + r.Float64() - 1.5
		if i%100 == 0 {
			v += 15
		}
		evs = append(evs, ifEvent("acme/plant", "d0", "temperature", v))
	}
	a.Apply(ifBlock(0, evs...))
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		n += len(a.Tags(evs[i&2047]))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/item")
}

// TestIForestTrainsOffTheBlockPath: a model fitted from the windows at a
// retraining block is put in force at the end of the next block's Apply,
// so the fit runs beside that block instead of inside Apply.
func TestIForestTrainsOffTheBlockPath(t *testing.T) {
	a := mustIForest(t, IForestConfig{Keys: []string{"t"}, RetrainEvery: 2, MinTrain: 2, SampleSize: 2, Window: 8, Threshold: 0.01})
	ev := ifEvent("a/b", "d", "t", 1)
	a.Apply(ifBlock(0, ev, ifEvent("a/b", "d", "t", 2)))
	a.Apply(ifBlock(1, ifEvent("a/b", "d", "t", 3))) // retraining block: fits start
	if tags := a.Tags(ev); len(tags) != 0 {
		t.Fatalf("a model fitted at block 1 scored before block 2 ended: %v", tags)
	}
	a.Apply(ifBlock(2, ifEvent("a/b", "d", "t", 4))) // installs them
	tags := a.Tags(ev)
	if len(tags) != 1 || tags[0].Model != "h1" {
		t.Fatalf("after block 2: tags %v, want one from model h1", tags)
	}
}
