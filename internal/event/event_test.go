package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

const seedEvent = `{
    "uid": "unique-event-identifier",
    "timestamp": 1696248400000,
    "items": [
        {"key": "temperature", "value": 23.5},
        {"key": "humidity", "value": 55.6}
    ],
    "namespace": "organization/device_group",
    "device_uid": "device_001"
}`

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		check   func(t *testing.T, ev *Event)
	}{
		{"seed example", seedEvent, func(t *testing.T, ev *Event) {
			if ev.UID != "unique-event-identifier" || ev.Timestamp != 1696248400000 || ev.Namespace != "organization/device_group" ||
				ev.DeviceUID != "device_001" || len(ev.Items) != 2 || ev.Items[1].Key != "humidity" || ev.Items[1].Value.Num != 55.6 {
				t.Errorf("parsed %+v", ev)
			}
		}},
		{"fields in any order", `{"device_uid":"d","namespace":"o/g","items":[{"value":1,"key":"k"}],"timestamp":1,"uid":"u"}`, nil},
		{"string, bool and array values", `{"uid":"u","timestamp":1,"items":[{"key":"s","value":"été ✓"},{"key":"b","value":false},{"key":"a","value":[1,"x",true]},{"key":"e","value":[]}],"namespace":"o/g","device_uid":"d"}`,
			func(t *testing.T, ev *Event) {
				if ev.Items[0].Value.Str != "été ✓" || ev.Items[1].Value.Kind != KindBool || len(ev.Items[2].Value.Array) != 3 ||
					ev.Items[3].Value.Kind != KindArray || len(ev.Items[3].Value.Array) != 0 {
					t.Errorf("parsed %+v", ev.Items)
				}
			}},
		{"number forms", `{"uid":"u","timestamp":1,"items":[{"key":"a","value":-4.0e1},{"key":"b","value":1E-400},{"key":"c","value":-0},{"key":"d","value":1.7976931348623157e308}],"namespace":"o/g","device_uid":"d"}`,
			func(t *testing.T, ev *Event) {
				v := ev.Items
				if v[0].Value.Num != -40 || v[1].Value.Num != 0 || !math.Signbit(v[2].Value.Num) || v[3].Value.Num != math.MaxFloat64 {
					t.Errorf("parsed %+v", v)
				}
			}},
		{"escaped member name", `{"\u0075id":"u","timestamp":1,"items":[{"key":"k","value":1}],"namespace":"o/g","device_uid":"d"}`, nil},
		{"identifier characters", `{"uid":"A-z_0.9:x","timestamp":9007199254740991,"items":[{"key":"motor/rpm x","value":1}],"namespace":"a.b/c:d","device_uid":"Z-9_.:"}`, nil},
		{"whitespace around", " \n\t" + seedEvent + "\n ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Parse([]byte(tc.payload), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, ev)
			}
		})
	}
}

// ev builds a payload from the seed event with one member replaced (or
// removed when val is "").
func ev(member, val string) string {
	fields := []struct{ name, val string }{
		{"uid", `"u1"`}, {"timestamp", `1696248400000`}, {"items", `[{"key":"k","value":1}]`},
		{"namespace", `"org/grp"`}, {"device_uid", `"dev"`},
	}
	var b strings.Builder
	b.WriteString("{")
	first := true
	for _, f := range fields {
		v := f.val
		if f.name == member {
			v = val
		}
		if v == "" {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		b.WriteString(`"` + f.name + `":` + v)
	}
	b.WriteString("}")
	return b.String()
}

func TestParseRefusals(t *testing.T) {
	long := func(n int) string { return `"` + strings.Repeat("a", n) + `"` }
	items := func(n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(`{"key":"k","value":1},`, n), ",") + "]"
	}
	arr := func(n int) string {
		return `[{"key":"k","value":[` + strings.TrimSuffix(strings.Repeat("1,", n), ",") + `]}]`
	}
	lim := DefaultLimits()
	for _, tc := range []struct {
		name, payload, field string
	}{
		{"empty payload", ``, ""},
		{"not an object", `[1]`, ""},
		{"malformed JSON", `{"uid":"u",}`, ""},
		{"truncated", `{"uid":"u"`, ""},
		{"missing comma", `{"uid":"u" "timestamp":1}`, ""},
		{"trailing data", ev("", "") + `x`, ""},
		{"second object", ev("", "") + `{}`, ""},
		{"oversized payload", `{"uid":"` + strings.Repeat("a", lim.MaxPayload) + `"}`, ""},
		{"missing uid", ev("uid", ""), "uid"},
		{"missing timestamp", ev("timestamp", ""), "timestamp"},
		{"missing items", ev("items", ""), "items"},
		{"missing namespace", ev("namespace", ""), "namespace"},
		{"missing device_uid", ev("device_uid", ""), "device_uid"},
		{"extra field", strings.Replace(ev("", ""), `{`, `{"extra":1,`, 1), "extra"},
		{"repeated field", strings.Replace(ev("", ""), `{`, `{"uid":"u0",`, 1), "uid"},
		{"repeated item field", ev("items", `[{"key":"k","key":"j","value":1}]`), "items[0].key"},
		{"extra item field", ev("items", `[{"key":"k","value":1,"unit":"C"}]`), "items[0].unit"},
		{"item missing key", ev("items", `[{"value":1}]`), "items[0].key"},
		{"item missing value", ev("items", `[{"key":"k"}]`), "items[0].value"},
		{"uid number", ev("uid", `1`), "uid"},
		{"uid null", ev("uid", `null`), "uid"},
		{"uid object", ev("uid", `{}`), "uid"},
		{"timestamp string", ev("timestamp", `"1696248400000"`), "timestamp"},
		{"timestamp fraction", ev("timestamp", `1.5`), "timestamp"},
		{"timestamp exponent", ev("timestamp", `1e3`), "timestamp"},
		{"timestamp zero", ev("timestamp", `0`), "timestamp"},
		{"timestamp negative", ev("timestamp", `-5`), "timestamp"},
		{"timestamp huge", ev("timestamp", `99999999999999999999`), "timestamp"},
		{"timestamp beyond 2^53", ev("timestamp", `9007199254740992`), "timestamp"},
		{"items object", ev("items", `{}`), "items"},
		{"items string", ev("items", `"x"`), "items"},
		{"items empty", ev("items", `[]`), "items"},
		{"items too many", ev("items", items(lim.MaxItems+1)), "items"},
		{"item not object", ev("items", `[1]`), "items[0]"},
		{"namespace number", ev("namespace", `7`), "namespace"},
		{"namespace no slash", ev("namespace", `"org"`), "namespace"},
		{"namespace two slashes", ev("namespace", `"a/b/c"`), "namespace"},
		{"namespace empty part", ev("namespace", `"org/"`), "namespace"},
		{"namespace bad char", ev("namespace", `"org/g rp"`), "namespace"},
		{"namespace part too long", ev("namespace", `"`+strings.Repeat("a", lim.MaxNSPartLen+1)+`/g"`), "namespace"},
		{"device_uid bool", ev("device_uid", `true`), "device_uid"},
		{"device_uid empty", ev("device_uid", `""`), "device_uid"},
		{"device_uid bad char", ev("device_uid", `"dev/1"`), "device_uid"},
		{"device_uid too long", ev("device_uid", long(lim.MaxDeviceLen+1)), "device_uid"},
		{"uid too long", ev("uid", long(lim.MaxUIDLen+1)), "uid"},
		{"uid empty", ev("uid", `""`), "uid"},
		{"uid space", ev("uid", `"a b"`), "uid"},
		{"uid unicode", ev("uid", `"é"`), "uid"},
		{"key number", ev("items", `[{"key":1,"value":1}]`), "items[0].key"},
		{"key empty", ev("items", `[{"key":"","value":1}]`), "items[0].key"},
		{"key bad char", ev("items", `[{"key":"a\"b","value":1}]`), "items[0].key"},
		{"key too long", ev("items", `[{"key":`+long(lim.MaxKeyLen+1)+`,"value":1}]`), "items[0].key"},
		{"value null", ev("items", `[{"key":"k","value":null}]`), "items[0].value"},
		{"value object", ev("items", `[{"key":"k","value":{"a":1}}]`), "items[0].value"},
		{"value nested array", ev("items", `[{"key":"k","value":[[1]]}]`), "items[0].value[0]"},
		{"value null in array", ev("items", `[{"key":"k","value":[1,null]}]`), "items[0].value[1]"},
		{"value object in array", ev("items", `[{"key":"k","value":[{}]}]`), "items[0].value[0]"},
		{"value array too long", ev("items", arr(lim.MaxArrayLen+1)), "items[0].value"},
		{"value string too long", ev("items", `[{"key":"k","value":`+long(lim.MaxStringLen+1)+`}]`), "items[0].value"},
		{"value huge number", ev("items", `[{"key":"k","value":1e400}]`), "items[0].value"},
		{"value huge negative", ev("items", `[{"key":"k","value":-1e309}]`), "items[0].value"},
		{"value NaN", ev("items", `[{"key":"k","value":NaN}]`), "items[0].value"},
		{"value Infinity", ev("items", `[{"key":"k","value":Infinity}]`), "items[0].value"},
		{"value string NaN is a string", ev("items", `[{"key":"k","value":"NaN"}]`), "-"},
		{"value hex", ev("items", `[{"key":"k","value":0x10}]`), "items[0]"},
		{"value leading zero", ev("items", `[{"key":"k","value":012}]`), "items[0]"},
		{"value plus sign", ev("items", `[{"key":"k","value":+1}]`), "items[0].value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.payload), lim)
			if tc.field == "-" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v (%T), want *Error", err, err)
			}
			if tc.field != "" && e.Field != tc.field {
				t.Fatalf("field %q, want %q (%v)", e.Field, tc.field, err)
			}
			if e.Reason == "" {
				t.Fatal("empty reason")
			}
		})
	}
}

func TestParseLimitsConfigurable(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxItems = 1
	if _, err := Parse([]byte(ev("items", `[{"key":"a","value":1},{"key":"b","value":2}]`)), lim); err == nil {
		t.Fatal("MaxItems 1 accepted two items")
	}
	lim = DefaultLimits()
	lim.MaxPayload = 10
	if _, err := Parse([]byte(ev("", "")), lim); err == nil {
		t.Fatal("MaxPayload not applied")
	}
}

func TestMarshalJSONRoundTrip(t *testing.T) {
	e1, err := Parse([]byte(seedEvent), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	out, err := e1.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"uid":"unique-event-identifier","timestamp":1696248400000,"items":[{"key":"temperature","value":23.5},{"key":"humidity","value":55.6}],"namespace":"organization/device_group","device_uid":"device_001"}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	var e2 Event
	if err := e2.UnmarshalJSON(out); err != nil {
		t.Fatal(err)
	}
	en1, en2 := Entry{Event: *e1, HubID: "h"}, Entry{Event: e2, HubID: "h"}
	if !bytes.Equal(en1.Encode(), en2.Encode()) {
		t.Fatal("JSON round trip changed the entry encoding")
	}
}

func sampleEntry() *Entry {
	return &Entry{
		Event: Event{
			UID: "evt-1", Timestamp: 1696248400000, Namespace: "acme/line", DeviceUID: "dev-1",
			Items: []Item{
				{Key: "t", Value: Value{Kind: KindNumber, Num: -12.25}},
				{Key: "s", Value: Value{Kind: KindString, Str: "héllo"}},
				{Key: "b", Value: Value{Kind: KindBool, Bool: true}},
				{Key: "a", Value: Value{Kind: KindArray, Array: []Value{{Kind: KindNumber, Num: 1}, {Kind: KindString, Str: "x"}, {Kind: KindBool}}}},
			},
		},
		HubID: "hub-1", ReceivedMs: 1696248400100,
		Tags: []Tag{{Analyzer: "iforest", Label: "anomaly", Score: 731500}, {Analyzer: "range", Key: "t", Label: "low", Score: -1}},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	en := sampleEntry()
	b := en.Encode()
	got, err := DecodeEntry(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), b) {
		t.Fatal("decode/encode changed the bytes")
	}
	if n := en.EncodedLen(); n != len(b) || cap(b) != len(b) {
		t.Fatalf("EncodedLen %d, encoding %d bytes in a slice of %d", n, len(b), cap(b))
	}
	if n, want := en.Submission().EncodedLen(), len(en.Submission().Encode()); n != want {
		t.Fatalf("EncodedLen %d of the tagless submission, encoding %d bytes", n, want)
	}
	if got.HubID != en.HubID || got.ReceivedMs != en.ReceivedMs || got.Event.Items[1].Value.Str != "héllo" ||
		got.Tags[1].Score != -1 || got.Event.Items[3].Value.Array[1].Str != "x" {
		t.Fatalf("decoded %+v", got)
	}
	if s := en.Submission(); s.Tags != nil || en.Tags == nil {
		t.Fatal("Submission must drop tags on a copy")
	}
	// Hand-checked prefix: version, hub_id, received_ms.
	want := []byte{1, 0, 0, 0, 5, 'h', 'u', 'b', '-', '1'}
	want = binary.BigEndian.AppendUint64(want, 1696248400100)
	if !bytes.HasPrefix(b, want) {
		t.Fatalf("encoding starts %x, want %x", b[:len(want)], want)
	}
}

func TestDecodeEntryRefusals(t *testing.T) {
	good := sampleEntry().Encode()
	lim := DefaultLimits()
	// Every truncation is refused.
	for n := 0; n < len(good); n++ {
		if _, err := DecodeEntry(good[:n], lim); !errors.Is(err, ErrEncoding) {
			t.Fatalf("truncation to %d bytes: got %v", n, err)
		}
	}
	mutate := func(f func(en *Entry)) []byte {
		en := sampleEntry()
		f(en)
		return en.Encode()
	}
	// Offsets into a minimal entry, for surgical corruption.
	minimal := &Entry{HubID: "h", ReceivedMs: 1, Event: Event{UID: "u", Timestamp: 1, Namespace: "o/g", DeviceUID: "d",
		Items: []Item{{Key: "k", Value: Value{Kind: KindBool}}}}}
	mb := minimal.Encode()
	// 1 version + 5 hub + 8 recv + 5 uid + 8 ts + 7 ns + 5 dev = 39; item count at 39..43, key 43..48, kind at 48, bool at 49.
	const offItemCount, offKind, offBool, offTagCount = 39, 48, 49, 50
	set := func(b []byte, off int, v ...byte) []byte {
		c := bytes.Clone(b)
		copy(c[off:], v)
		return c
	}
	if _, err := DecodeEntry(mb, lim); err != nil {
		t.Fatalf("minimal entry: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"version 0", set(good, 0, 0)},
		{"version 2", set(good, 0, 2)},
		{"bad kind 0", set(mb, offKind, 0)},
		{"bad kind 5", set(mb, offKind, 5)},
		{"bad bool byte", set(mb, offBool, 2)},
		{"bool byte 0xff", set(mb, offBool, 0xff)},
		{"huge item count", set(mb, offItemCount, 0xff, 0xff, 0xff, 0xff)},
		{"huge tag count", set(mb, offTagCount, 0x7f, 0xff, 0xff, 0xff)},
		{"huge string length", set(mb, 1, 0xff, 0xff, 0xff, 0xff)},
		{"zero items", mutate(func(en *Entry) { en.Event.Items = nil })},
		{"empty hub id", mutate(func(en *Entry) { en.HubID = "" })},
		{"bad uid", mutate(func(en *Entry) { en.Event.UID = "a b" })},
		{"bad namespace", mutate(func(en *Entry) { en.Event.Namespace = "nons" })},
		{"zero timestamp", mutate(func(en *Entry) { en.Event.Timestamp = 0 })},
		{"NaN", mutate(func(en *Entry) { en.Event.Items[0].Value.Num = math.NaN() })},
		{"Inf", mutate(func(en *Entry) { en.Event.Items[0].Value.Num = math.Inf(-1) })},
		{"invalid UTF-8 string", mutate(func(en *Entry) { en.Event.Items[1].Value.Str = "\xff" })},
		{"nested array", mutate(func(en *Entry) {
			en.Event.Items[3].Value.Array[0] = Value{Kind: KindArray, Array: []Value{{Kind: KindBool}}}
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeEntry(tc.b, lim); !errors.Is(err, ErrEncoding) {
				t.Fatalf("got %v, want ErrEncoding", err)
			}
		})
	}
}

func TestLeafHash(t *testing.T) {
	b := sampleEntry().Encode()
	d := Digest(b)
	l := LeafHash(b)
	if bytes.Equal(d[:], l[:]) {
		t.Fatal("leaf hash equals digest")
	}
	// Leaf = SHA-256(0x00 || digest): an OpenTimestamps prepend(00) + sha256.
	if got := LeafHash(nil); got == Digest(nil) {
		t.Fatal("leaf hash of empty input equals its digest")
	}
}

var fuzzSeeds = []string{
	seedEvent,
	`{"uid":"u","timestamp":1,"items":[{"key":"k","value":[1,"é",true]}],"namespace":"o/g","device_uid":"d"}`,
	`{"uid":"u","timestamp":1,"items":[{"key":"k","value":-0}],"namespace":"o/g","device_uid":"d"}`,
	`{"uid":"u","timestamp":1,"items":[{"key":"k","value":"\u003c\ud83c\udf21\ufffd"}],"namespace":"o/g","device_uid":"d"}`,
	`{"uid":"u","timestamp":1,"items":[],"namespace":"o/g","device_uid":"d"}`,
	`{"uid":"u","uid":"v"}`,
	`{"uid":"u","timestamp":1,"items":[{"key":"k","value":[[1]]}],"namespace":"o/g","device_uid":"d"}`,
	`[`, ``, `{`, `{"items":[{"key":"k","value":1e999}]}`,
}

// FuzzParse checks that Parse never panics, and that an accepted event
// survives JSON and entry round trips unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	lim := DefaultLimits()
	wide := lim
	wide.MaxPayload = 1 << 30 // MarshalJSON may escape more than the device did
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := Parse(payload, lim)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		en := Entry{Event: *ev, HubID: "hub-1", ReceivedMs: 1}
		b := en.Encode()
		dec, err := DecodeEntry(b, lim)
		if err != nil {
			t.Fatalf("accepted event does not decode from its entry: %v", err)
		}
		if !bytes.Equal(dec.Encode(), b) {
			t.Fatal("entry round trip changed bytes")
		}
		js, _ := ev.MarshalJSON()
		ev2, err := Parse(js, wide)
		if err != nil {
			t.Fatalf("MarshalJSON output %s refused: %v", js, err)
		}
		en2 := Entry{Event: *ev2, HubID: "hub-1", ReceivedMs: 1}
		if !bytes.Equal(en2.Encode(), b) {
			t.Fatalf("JSON round trip changed the event: %s", js)
		}
	})
}

// FuzzDecodeEntry checks that DecodeEntry never panics, that an accepted
// encoding is the only one (re-encoding gives the same bytes), and that its
// event has a JSON form that parses back to it.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(sampleEntry().Encode())
	for _, s := range fuzzSeeds[:4] {
		ev, err := Parse([]byte(s), DefaultLimits())
		if err != nil {
			f.Fatal(err)
		}
		f.Add((&Entry{Event: *ev, HubID: "h", ReceivedMs: 7, Tags: []Tag{{"a", "k", "l", "m1", 5}}}).Encode())
	}
	f.Add([]byte{1, 0, 0, 0, 1, 'h'})
	lim := DefaultLimits()
	wide := lim
	wide.MaxPayload = 1 << 30
	f.Fuzz(func(t *testing.T, b []byte) {
		en, err := DecodeEntry(b, lim)
		if err != nil {
			if !errors.Is(err, ErrEncoding) {
				t.Fatalf("error %v does not wrap ErrEncoding", err)
			}
			return
		}
		if !bytes.Equal(en.Encode(), b) {
			t.Fatalf("accepted non-canonical encoding %x", b)
		}
		js, _ := en.Event.MarshalJSON()
		ev, err := Parse(js, wide)
		if err != nil {
			t.Fatalf("decoded event's JSON %s refused: %v", js, err)
		}
		en2 := *en
		en2.Event = *ev
		if !bytes.Equal(en2.Encode(), b) {
			t.Fatalf("event JSON %s does not round-trip", js)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	payload := []byte(seedEvent)
	lim := DefaultLimits()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(payload, lim); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeLeafHash(b *testing.B) {
	en := sampleEntry()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = en.AppendEncode(buf[:0])
		_ = LeafHash(buf)
	}
}

// BenchmarkDecodeEntry is what every node does for every entry of every
// block it stores or indexes.
func BenchmarkDecodeEntry(b *testing.B) {
	raw := sampleEntry().Encode()
	lim := DefaultLimits()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntry(raw, lim); err != nil {
			b.Fatal(err)
		}
	}
}
