package event

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// tablePayloads returns the payloads of TestParseValid and
// TestParseRefusals, to seed the differential tests.
func tablePayloads() []string {
	lim := DefaultLimits()
	long := func(n int) string { return `"` + strings.Repeat("a", n) + `"` }
	items := func(n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(`{"key":"k","value":1},`, n), ",") + "]"
	}
	arr := func(n int) string {
		return `[{"key":"k","value":[` + strings.TrimSuffix(strings.Repeat("1,", n), ",") + `]}]`
	}
	return []string{
		// TestParseValid
		seedEvent,
		`{"device_uid":"d","namespace":"o/g","items":[{"value":1,"key":"k"}],"timestamp":1,"uid":"u"}`,
		`{"uid":"u","timestamp":1,"items":[{"key":"s","value":"été ✓"},{"key":"b","value":false},{"key":"a","value":[1,"x",true]},{"key":"e","value":[]}],"namespace":"o/g","device_uid":"d"}`,
		`{"uid":"u","timestamp":1,"items":[{"key":"a","value":-4.0e1},{"key":"b","value":1E-400},{"key":"c","value":-0},{"key":"d","value":1.7976931348623157e308}],"namespace":"o/g","device_uid":"d"}`,
		`{"\u0075id":"u","timestamp":1,"items":[{"key":"k","value":1}],"namespace":"o/g","device_uid":"d"}`,
		`{"uid":"A-z_0.9:x","timestamp":9007199254740991,"items":[{"key":"motor/rpm x","value":1}],"namespace":"a.b/c:d","device_uid":"Z-9_.:"}`,
		" \n\t" + seedEvent + "\n ",
		// TestParseRefusals
		``, `[1]`, `{"uid":"u",}`, `{"uid":"u"`, `{"uid":"u" "timestamp":1}`,
		ev("", "") + `x`, ev("", "") + `{}`,
		`{"uid":"` + strings.Repeat("a", lim.MaxPayload) + `"}`,
		ev("uid", ""), ev("timestamp", ""), ev("items", ""), ev("namespace", ""), ev("device_uid", ""),
		strings.Replace(ev("", ""), `{`, `{"extra":1,`, 1),
		strings.Replace(ev("", ""), `{`, `{"uid":"u0",`, 1),
		ev("items", `[{"key":"k","key":"j","value":1}]`),
		ev("items", `[{"key":"k","value":1,"unit":"C"}]`),
		ev("items", `[{"value":1}]`), ev("items", `[{"key":"k"}]`),
		ev("uid", `1`), ev("uid", `null`), ev("uid", `{}`),
		ev("timestamp", `"1696248400000"`), ev("timestamp", `1.5`), ev("timestamp", `1e3`),
		ev("timestamp", `0`), ev("timestamp", `-5`), ev("timestamp", `99999999999999999999`),
		ev("timestamp", `9007199254740992`),
		ev("items", `{}`), ev("items", `"x"`), ev("items", `[]`), ev("items", items(lim.MaxItems+1)),
		ev("items", `[1]`),
		ev("namespace", `7`), ev("namespace", `"org"`), ev("namespace", `"a/b/c"`), ev("namespace", `"org/"`),
		ev("namespace", `"org/g rp"`), ev("namespace", `"`+strings.Repeat("a", lim.MaxNSPartLen+1)+`/g"`),
		ev("device_uid", `true`), ev("device_uid", `""`), ev("device_uid", `"dev/1"`),
		ev("device_uid", long(lim.MaxDeviceLen+1)),
		ev("uid", long(lim.MaxUIDLen+1)), ev("uid", `""`), ev("uid", `"a b"`), ev("uid", `"é"`),
		ev("items", `[{"key":1,"value":1}]`), ev("items", `[{"key":"","value":1}]`),
		ev("items", `[{"key":"a\"b","value":1}]`), ev("items", `[{"key":`+long(lim.MaxKeyLen+1)+`,"value":1}]`),
		ev("items", `[{"key":"k","value":null}]`), ev("items", `[{"key":"k","value":{"a":1}}]`),
		ev("items", `[{"key":"k","value":[[1]]}]`), ev("items", `[{"key":"k","value":[1,null]}]`),
		ev("items", `[{"key":"k","value":[{}]}]`), ev("items", arr(lim.MaxArrayLen+1)),
		ev("items", `[{"key":"k","value":`+long(lim.MaxStringLen+1)+`}]`),
		ev("items", `[{"key":"k","value":1e400}]`), ev("items", `[{"key":"k","value":-1e309}]`),
		ev("items", `[{"key":"k","value":NaN}]`), ev("items", `[{"key":"k","value":Infinity}]`),
		ev("items", `[{"key":"k","value":"NaN"}]`), ev("items", `[{"key":"k","value":0x10}]`),
		ev("items", `[{"key":"k","value":012}]`), ev("items", `[{"key":"k","value":+1}]`),
	}
}

// edgePayloads are inputs aimed at the corners of the hand-written scanner.
func edgePayloads() []string {
	val := func(v string) string { return ev("items", `[{"key":"k","value":`+v+`}]`) }
	var out []string
	for _, v := range []string{
		// strings: escapes, surrogates, invalid UTF-8, control characters
		`"\"\\\/\b\f\n\r\t"`, `"\u00e9\u00E9"`, `"\ud83c\udf21"`, `"\ud83c"`, `"\ud83cx"`, `"\udf21\ud83c"`,
		`"\ud83c\u0041"`, `"\ud83c\ud83c\udf21"`, `"\ud800\udbff"`, `"\u0000"`, `"\uzzzz"`, `"\u12"`, `"\u12`,
		`"\x"`, `"\'"`, `"\`, `"a` + "\x01" + `"`, `"a` + "\x7f" + `"`, "\"\xff\"", "\"\xed\xa0\x80\"",
		"\"\xc3\"", "\"\xc3\xa9\"", "\"\xef\xbf\xbd\"", "\"\xf4\x90\x80\x80\"", "\"a\xe2\x82\"", "\"\\\xff\"",
		"\"\t\"", "\"\u2028\"",
		// numbers
		`0`, `-0`, `-0.0`, `01`, `-01`, `1.`, `1.e5`, `.5`, `-`, `-x`, `1e`, `1e+`, `1e-`, `1E+5`, `1e05`,
		`0e0`, `0.0e-0`, `1.5.3`, `1e5e3`, `2.35e1`, `4.9e-324`, `2e-324`, `1.7976931348623159e308`,
		`-`, `--1`, `1-`, `0x`, `00`, `1 2`, `123456789012345678901234567890`,
		// literals
		`true`, `false`, `null`, `tru`, `truex`, `nul`, `nulll`, `f`, `fals`, `True`,
		// arrays
		`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1}`, `[1`, `[`, `[1,`, `["a","b",false,-1e-3]`, `[[]]`,
		`[true,null]`, `[{"a":1}]`, `[1]]`, `[1],`,
	} {
		out = append(out, val(v))
	}
	for _, ts := range []string{`1`, `-0`, `1e3`, `1E3`, `1.0`, `1.`, `01`, `9223372036854775807`,
		`9223372036854775808`, `-9223372036854775808`, `999999999999999999`, `1000000000000000000`, `true`, `[1]`, `1x`, `1 `} {
		out = append(out, ev("timestamp", ts))
	}
	out = append(out,
		`{}`, ` `, `{`, `}`, `]`, `"x"`, `1`, `null`, `{"uid":"u"} x`, `{"uid"`, `{"uid" `, `{"uid":`, `{"uid" "u"}`,
		`{"uid":"u",,"timestamp":1}`, `{,"uid":"u"}`, `{"uid":"u"]`, `{"":1}`, `{"\u0000":1}`, "{\"\xff\":1}",
		`{"items":[{"":1}]}`, `{"items":[{"\u006bey":"k","value":1}]}`, `{"items":[{"key":"k","value":1},]}`,
		`{"items":[{"key":"k","value":1} {"key":"k","value":1}]}`, `{"items":[{"key":"k","value":1}}`,
		`{"items":[{"key" "k"}]}`, `{"items":[{"key":"k",}]}`, `{"items":[{"key":"k","value"}]}`,
		`{"items":[{"key":"k","value":1]}`, `{"items":[,]}`, `{"items":[{}]}`, `{"items":[{"value":1,"value":2}]}`,
		`{"items":[1,{}]}`, `{"items":[{},1]}`, `{"items":[{"key":"k","value":1}`, `{"items":[{"key":"k","value":1},`,
		"\r\n{\"uid\":\"u\",\t\"timestamp\" : 1 , \"items\" :[ { \"key\" : \"k\" , \"value\" : [ 1 , 2 ] } ] ,\"namespace\":\"o/g\",\"device_uid\":\"d\"}\r\n",
		ev("", "")+"\x00", ev("", "")+"\f", "\f"+ev("", ""), ev("", "")+"\u00a0",
		strings.Replace(ev("", ""), `{`, `{"timestamp":1,`, 1),
		strings.Replace(ev("", ""), `"uid":"u1"`, `"uid":"u1","uid":1`, 1),
	)
	// Accepted events with more strings and bytes than the parser's fixed
	// buffers hold.
	var many []string
	for i := 0; i < 40; i++ {
		many = append(many, `{"key":"k`+strings.Repeat("x", i)+`","value":["`+strings.Repeat("v", 3*i)+`\u00e9\ud83c\udf21",true,"`+"\xff"+`"]}`)
	}
	out = append(out, ev("items", "["+strings.Join(many, ",")+"]"))
	return out
}

func diffSeeds() []string {
	s := append([]string{}, fuzzSeeds...)
	s = append(s, tablePayloads()...)
	return append(s, edgePayloads()...)
}

// matchReference fails t unless Parse and parseReference agree on payload:
// both accept the same event or both refuse naming the same field.
func matchReference(t *testing.T, payload []byte, lim Limits) {
	t.Helper()
	got, gerr := Parse(payload, lim)
	want, werr := parseReference(payload, lim)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("payload %q: Parse error %v, reference error %v", payload, gerr, werr)
	}
	if werr != nil {
		var ge, we *Error
		if !errors.As(gerr, &ge) || !errors.As(werr, &we) {
			t.Fatalf("payload %q: errors %T, %T are not both *Error", payload, gerr, werr)
		}
		if ge.Field != we.Field {
			t.Fatalf("payload %q: Parse refused field %q (%v), reference %q (%v)", payload, ge.Field, gerr, we.Field, werr)
		}
		if ge.Reason == "" {
			t.Fatalf("payload %q: empty reason", payload)
		}
		// Only the wording of malformed-JSON reasons may differ.
		if !strings.HasPrefix(we.Reason, "malformed JSON") && ge.Reason != we.Reason {
			t.Fatalf("payload %q: reason %q, reference %q", payload, ge.Reason, we.Reason)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("payload %q: Parse %+v, reference %+v", payload, got, want)
	}
	gj, _ := got.MarshalJSON()
	wj, _ := want.MarshalJSON()
	if !bytes.Equal(gj, wj) {
		t.Fatalf("payload %q: JSON %s, reference %s", payload, gj, wj)
	}
	ge := (&Entry{Event: *got, HubID: "h", ReceivedMs: 1}).Encode()
	we := (&Entry{Event: *want, HubID: "h", ReceivedMs: 1}).Encode()
	if !bytes.Equal(ge, we) {
		t.Fatalf("payload %q: entry %x, reference %x", payload, ge, we)
	}
}

// tightLimits make Check refuse more, so that its refusals are compared too.
func tightLimits() Limits {
	lim := DefaultLimits()
	lim.MaxItems = 3
	lim.MaxArrayLen = 3
	lim.MaxStringLen = 8
	lim.MaxKeyLen = 8
	lim.MaxUIDLen = 8
	return lim
}

func TestParseMatchesReference(t *testing.T) {
	for _, s := range diffSeeds() {
		matchReference(t, []byte(s), DefaultLimits())
		matchReference(t, []byte(s), tightLimits())
		// Every prefix, which exercises each end-of-payload path.
		for n := 0; n < len(s) && n < 400; n++ {
			matchReference(t, []byte(s[:n]), DefaultLimits())
		}
	}
}

// TestParseFieldsOfMalformed pins the field named for malformed input, which
// is the member at which the offending token was expected.
func TestParseFieldsOfMalformed(t *testing.T) {
	for _, tc := range []struct{ payload, field string }{
		{`{"uid":"u",}`, ""},
		{`{"uid" "u"}`, "uid"},
		{`{"uid":"u` + "\x01" + `"}`, "uid"},
		{ev("items", `[{"key":"k","value":[1,]}]`), "items[0].value[1]"},
		{ev("items", `[{"key":"k","value":[1 2]}]`), "items[0].value[1]"},
		{ev("items", `[{"key":"k","value":[1}]`), "items[0].value"},
		{ev("items", `[{"key":"k","value":1},]`), "items[1]"},
		{ev("items", `[{"key":"k","value":1}}`), "items"},
		{ev("items", `[{"key":"k","value":1.}]`), "items[0].value"},
		{ev("items", `[{"key":"k","value":"\q"}]`), "items[0].value"},
		{ev("items", `[{"key":"k","value":01}]`), "items[0]"},
		{ev("items", `[{"":1}]`), "items[0]."},
		{ev("timestamp", `1e3`), "timestamp"},
	} {
		_, err := Parse([]byte(tc.payload), DefaultLimits())
		var e *Error
		if !errors.As(err, &e) || e.Field != tc.field {
			t.Errorf("%q: got %v, want field %q", tc.payload, err, tc.field)
		}
	}
}

// TestParseStringsAsEncodingJSON pins the string decoding that Parse shares
// with encoding/json: invalid UTF-8 and lone surrogates become U+FFFD.
func TestParseStringsAsEncodingJSON(t *testing.T) {
	for in, want := range map[string]string{
		`"\ud83c\udf21"`:     "\U0001F321",
		`"\ud83c"`:           "\uFFFD",
		`"\ud83c\u0041"`:     "\uFFFDA",
		`"\udf21\ud83c"`:     "\uFFFD\uFFFD",
		"\"\xff\"":           "\uFFFD",
		"\"\xed\xa0\x80\"":   "\uFFFD\uFFFD\uFFFD",
		`"\"\\\/\b\f\n\r\t"`: "\"\\/\b\f\n\r\t",
	} {
		e, err := Parse([]byte(ev("items", `[{"key":"k","value":`+in+`}]`)), DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := e.Items[0].Value.Str; got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}

// FuzzParseMatchesReference checks that Parse accepts exactly what the
// Token-based parser it replaced accepted, with the same event, and refuses
// the rest naming the same field.
func FuzzParseMatchesReference(f *testing.F) {
	for _, s := range diffSeeds() {
		f.Add([]byte(s))
	}
	lim := DefaultLimits()
	tight := tightLimits()
	f.Fuzz(func(t *testing.T, payload []byte) {
		matchReference(t, payload, lim)
		matchReference(t, payload, tight)
	})
}

func BenchmarkParseReference(b *testing.B) {
	payload := []byte(seedEvent)
	lim := DefaultLimits()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseReference(payload, lim); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseManyStrings(t *testing.T) {
	p := edgePayloads()
	e, err := Parse([]byte(p[len(p)-1]), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Items) != 40 || e.Items[39].Key != "k"+strings.Repeat("x", 39) ||
		e.Items[39].Value.Array[0].Str != strings.Repeat("v", 117)+"é\U0001F321" || e.Items[39].Value.Array[2].Str != "\uFFFD" {
		t.Fatalf("parsed %+v", e.Items[39])
	}
}

// BenchmarkCheck measures the share of Parse that is Check (event.go).
func BenchmarkCheck(b *testing.B) {
	e, err := Parse([]byte(seedEvent), DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	lim := DefaultLimits()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Check(lim); err != nil {
			b.Fatal(err)
		}
	}
}
