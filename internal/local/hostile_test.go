package local_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cissan/internal/event"
	"cissan/internal/local"
)

// hostileCase is one payload a hostile or broken device sends, and the
// PUBACK reason code the hub must answer.
type hostileCase struct {
	class   string
	topic   string // "" for the device's own events topic
	payload []byte
	code    byte   // 0: accepted, and then logged under uid
	uid     string // of an accepted case
}

// The identities of the suite: the device under attack, another device of
// another namespace whose identity it tries to use, and a bystander that
// publishes good events the whole time.
const (
	hostileDev   = "mallory"
	hostileNS    = "acme/lab"
	victimDev    = "alice"
	victimNS     = "other/grp"
	bystanderDev = "bob"
)

// TestHostileDevice throws more than 10,000 generated hostile payloads at
// a real hub over a real MQTT connection (raw MQTT 5, pipelined within
// the Receive Maximum), checks every PUBACK's reason code, then checks
// that the chain logs exactly the payloads that were acceptable (each
// limit reached but not passed) and none of the rest, and that a
// bystander publishing meanwhile had every event taken. Then protocol
// abuses, each on a fresh connection. It prints its counts.
func TestHostileDevice(t *testing.T) {
	tn := startNetWith(t, t.TempDir(), 1, func(c *local.Config) {
		// The flood of this suite is not what the limits are for; they
		// have tests of their own (guards_test.go).
		c.Guards.DeviceRate, c.Guards.DeviceBytes = 1e9, 1e12
	})
	tok := tn.register(hostileDev, hostileNS)
	tn.register(victimDev, victimNS)
	byTok := tn.register(bystanderDev, hostileNS)
	addr := tn.MQTTAddrs()[0]

	cases := hostileCases(rand.New(rand.NewPCG(17, 2026)))
	if len(cases) < 10_000 {
		t.Fatalf("generated %d cases, want at least 10,000", len(cases))
	}

	// The bystander publishes good events all along.
	bystander := tn.dial(0, bystanderDev, hostileNS, byTok)
	stop := make(chan struct{})
	var byWG sync.WaitGroup
	var byUIDs []string
	byWG.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			uid := fmt.Sprintf("bob-%d", i)
			publishOK(t, bystander, seedEvent(uid, bystanderDev, hostileNS, 20))
			byUIDs = append(byUIDs, uid)
		}
	})

	raw := dialRaw(t, addr)
	if code := raw.login(hostileDev, hostileDev, tok); code != 0 {
		t.Fatalf("login: CONNACK 0x%02x", code)
	}
	codes := raw.pipeline(t, cases, 200)
	close(stop)
	byWG.Wait()

	byClass := map[string][2]int{} // class -> cases, mismatches
	var accepted []string
	mismatches := 0
	for i, c := range cases {
		n := byClass[c.class]
		n[0]++
		if codes[i] != c.code {
			n[1]++
			if mismatches++; mismatches <= 20 {
				t.Errorf("%s case %d: PUBACK 0x%02x, want 0x%02x; payload %.120q", c.class, i, codes[i], c.code, c.payload)
			}
		}
		byClass[c.class] = n
		if c.code == 0 && codes[i] == 0 {
			accepted = append(accepted, c.uid)
		}
	}

	// Nothing but the acceptable payloads, and the bystander's events, is
	// logged: the chain's count, and each of them by uid.
	for _, uid := range accepted {
		tn.waitFinalOf(uid, hostileDev, 0)
	}
	for _, uid := range byUIDs {
		tn.waitFinalOf(uid, bystanderDev, 0)
	}
	tn.waitPoolsEmpty()
	if got, want := tn.eventCount(), fmt.Sprint(len(accepted)+len(byUIDs)); got != want {
		t.Errorf("the chain holds %s events; want %d acceptable ones and %d of the bystander's", got, len(accepted), len(byUIDs))
	}

	abuses := protocolAbuses(t, tn, addr, tok)
	publishOK(t, bystander, seedEvent("bob-after", bystanderDev, hostileNS, 20))

	classes := make([]string, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var b strings.Builder
	fmt.Fprintf(&b, "hostile: %d payloads over MQTT, %d acceptable at a limit and logged, %d refused and not logged, %d mismatches; %d protocol abuses; the bystander's %d events all logged\n",
		len(cases), len(accepted), len(cases)-len(accepted), mismatches, abuses, len(byUIDs))
	for _, c := range classes {
		fmt.Fprintf(&b, "hostile:   %-22s %6d cases, %d mismatches\n", c, byClass[c][0], byClass[c][1])
	}
	// Printed whatever -v says, so that CI's log shows the counts.
	fmt.Fprint(os.Stderr, b.String())
}

// pipeline sends every case as a QoS 1 PUBLISH, at most window
// unacknowledged at once, and returns each one's PUBACK reason code.
func (c *rawMQTT) pipeline(t *testing.T, cases []hostileCase, window int) []byte {
	t.Helper()
	codes := make([]byte, len(cases))
	got := make(chan error, 1)
	sem := make(chan struct{}, window)
	go func() {
		for n := 0; n < len(cases); n++ {
			typ, body, err := c.read(30 * time.Second)
			if err == nil && (typ != 4 || len(body) < 2) {
				err = fmt.Errorf("packet type %d (body %x) where a PUBACK was due", typ, body)
			}
			if err != nil {
				got <- fmt.Errorf("after %d PUBACKs: %w", n, err)
				return
			}
			id := int(binary.BigEndian.Uint16(body))
			if id != n%65535+1 {
				got <- fmt.Errorf("PUBACK %d where %d was due", id, n%65535+1)
				return
			}
			if len(body) > 2 {
				codes[n] = body[2]
			}
			<-sem
		}
		got <- nil
	}()
	for i, hc := range cases {
		topic := hc.topic
		if topic == "" {
			topic = "devices/" + hostileDev + "/events"
		}
		select {
		case sem <- struct{}{}:
		case err := <-got:
			t.Fatalf("the hub stopped answering: %v", err)
		}
		c.send(publishPacket(topic, uint16(i%65535+1), 1, false, hc.payload))
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	return codes
}

// hostileCases generates the payloads, class by class.
func hostileCases(rng *rand.Rand) []hostileCase {
	var out []hostileCase
	add := func(class string, code byte, payload []byte) {
		out = append(out, hostileCase{class: class, payload: payload, code: code})
	}
	seq := 0
	good := func() map[string]any {
		seq++
		return map[string]any{
			"uid":       fmt.Sprintf("m-%d", seq),
			"timestamp": 1696248400000 + int64(rng.IntN(1_000_000)),
			"items": []any{
				map[string]any{"key": "temperature", "value": float64(rng.IntN(500)) / 10},
				map[string]any{"key": "ok", "value": rng.IntN(2) == 1},
				map[string]any{"key": "label", "value": "x"},
			},
			"namespace":  hostileNS,
			"device_uid": hostileDev,
		}
	}
	enc := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return b
	}
	const bad, notAuth = 0x99, 0x87

	// Every truncation of valid events: never a complete JSON object.
	for range 40 {
		b := enc(good())
		for n := 0; n < len(b); n++ {
			add("truncated", bad, b[:n])
		}
	}
	// Random bytes, and valid events with garbage around them.
	for range 1500 {
		junk := make([]byte, 1+rng.IntN(300))
		for i := range junk {
			junk[i] = byte(rng.IntN(256))
		}
		junk[0] = "x]}\x00\xff"[rng.IntN(5)] // never the start of an object
		add("garbage", bad, junk)
	}
	for _, s := range []string{"x", "{}", " ]", "\x00", "null", "\"\"", ",", "{\"uid\":1}"} {
		for range 40 {
			add("trailing data", bad, append(enc(good()), s...))
		}
	}
	for _, s := range []string{"", " ", "null", "[]", "true", "0", "\"event\"", "[{}]", "{", "}"} {
		add("not an object", bad, []byte(s))
	}
	// Each member with a value of every wrong type.
	wrong := map[string][]any{
		"uid":        {1, true, nil, []any{"a"}, map[string]any{}, 1.5},
		"timestamp":  {"1696248400000", true, nil, []any{1}, map[string]any{}, 1.5, -1, 0, float64(1 << 53), 1e300},
		"items":      {"x", 1, true, nil, map[string]any{}, []any{}, []any{1}, []any{"x"}, []any{nil}, []any{[]any{}}},
		"namespace":  {1, true, nil, []any{"a/b"}, map[string]any{}, "a", "a/b/c", "/b", "a/", "a//b", "A B/c"},
		"device_uid": {1, true, nil, []any{hostileDev}, map[string]any{}},
	}
	for field, vals := range wrong {
		for _, v := range vals {
			for range 20 {
				ev := good()
				ev[field] = v
				add("wrong type "+field, bad, enc(ev))
			}
		}
	}
	itemWrong := []any{
		map[string]any{"key": "k"},
		map[string]any{"value": 1},
		map[string]any{"key": "k", "value": 1, "unit": "C"},
		map[string]any{"key": 1, "value": 1},
		map[string]any{"key": "", "value": 1},
		map[string]any{"key": "k", "value": nil},
		map[string]any{"key": "k", "value": map[string]any{}},
		map[string]any{"key": "k", "value": []any{[]any{1}}},
		map[string]any{"key": "k", "value": []any{map[string]any{}}},
		map[string]any{"key": "k", "value": []any{nil}},
		map[string]any{"key": "k\u0000", "value": 1},
		map[string]any{"key": "k\n", "value": 1},
		"item", 1, nil, []any{},
	}
	for _, it := range itemWrong {
		for range 25 {
			ev := good()
			ev["items"] = append(ev["items"].([]any), it)
			add("bad item", bad, enc(ev))
		}
	}
	// Missing, unknown and repeated members.
	for _, field := range []string{"uid", "timestamp", "items", "namespace", "device_uid"} {
		for range 30 {
			ev := good()
			delete(ev, field)
			add("missing member", bad, enc(ev))
		}
		for range 30 {
			b := enc(good())
			// The member again, with another value, at the end: a
			// parser that took the last one would log other content.
			again := fmt.Sprintf(`,%q:%s}`, field, enc(good()[field]))
			add("repeated member", bad, append(b[:len(b)-1], again...))
		}
	}
	for _, extra := range []string{"extra", "UID", "uid ", "device", "hub_id", "tags", "__proto__"} {
		for range 20 {
			ev := good()
			ev[extra] = "x"
			add("unknown member", bad, enc(ev))
		}
	}
	// Number literals JSON does not have, or that no float64 holds.
	for _, lit := range []string{"NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0x10", "01", "+1", ".5", "1.", "1e", "--1", "1_000"} {
		for range 20 {
			b := enc(good())
			s := strings.Replace(string(b), `"label","value":"x"`, `"label","value":`+lit, 1)
			add("bad number", bad, []byte(s))
		}
	}
	// Nesting far deeper than an event has.
	for depth := 2; depth < 400; depth += 4 {
		ev := good()
		s := strings.Replace(string(enc(ev)), `"x"`, strings.Repeat("[", depth)+"1"+strings.Repeat("]", depth), 1)
		add("deep nesting", bad, []byte(s))
	}
	// Identifiers with bytes outside A-Z a-z 0-9 - _ . :, and strings that
	// are not JSON strings.
	for _, field := range []string{"uid", "device_uid"} {
		for c := 0; c < 128; c++ {
			if c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || strings.ContainsRune("-_.:", rune(c)) {
				continue
			}
			ev := good()
			ev[field] = "a" + string(rune(c)) + "b"
			code := byte(bad)
			add("bad identifier", code, enc(ev))
		}
	}
	for _, s := range []string{`"\x"`, `"\u12"`, `"\ud800\u"`, "\"a\x01b\"", "\"tab\tinside\""} {
		for range 20 {
			b := enc(good())
			add("bad string", bad, []byte(strings.Replace(string(b), `"x"`, s, 1)))
		}
	}
	// Each limit: exactly at it is acceptable, and logged; one past it is
	// refused.
	lim := event.DefaultLimits()
	limit := func(name string, mk func(ev map[string]any, n int), at int) {
		for _, n := range []int{at, at + 1} {
			ev := good()
			mk(ev, n)
			c := hostileCase{class: "limit " + name, payload: enc(ev), code: bad}
			if n == at {
				c.code, c.uid = 0, ev["uid"].(string)
			}
			out = append(out, c)
		}
	}
	for range 4 {
		limit("uid length", func(ev map[string]any, n int) {
			ev["uid"] = fmt.Sprintf("%s-%0*d", ev["uid"], n-len(ev["uid"].(string))-1, 0)
		}, lim.MaxUIDLen)
		limit("items", func(ev map[string]any, n int) {
			items := make([]any, n)
			for i := range items {
				items[i] = map[string]any{"key": fmt.Sprintf("k%d", i), "value": i}
			}
			ev["items"] = items
		}, lim.MaxItems)
		limit("key length", func(ev map[string]any, n int) {
			ev["items"] = []any{map[string]any{"key": strings.Repeat("k", n), "value": 1}}
		}, lim.MaxKeyLen)
		limit("string length", func(ev map[string]any, n int) {
			ev["items"] = []any{map[string]any{"key": "s", "value": strings.Repeat("v", n)}}
		}, lim.MaxStringLen)
		limit("array length", func(ev map[string]any, n int) {
			arr := make([]any, n)
			for i := range arr {
				arr[i] = i % 10
			}
			ev["items"] = []any{map[string]any{"key": "a", "value": arr}}
		}, lim.MaxArrayLen)
		limit("timestamp", func(ev map[string]any, n int) {
			ev["timestamp"] = lim.MaxTimestampMs + int64(n-1)
		}, 1)
	}
	// Someone else's identity: another device's uid in the event, another
	// namespace, another device's topic, and topics that are no device's.
	for range 300 {
		ev := good()
		ev["device_uid"] = victimDev
		add("another device", notAuth, enc(ev))
		ev = good()
		ev["namespace"] = victimNS
		add("another namespace", notAuth, enc(ev))
	}
	for _, tp := range []string{"devices/" + victimDev + "/events", "devices/" + hostileDev, "devices/" + hostileDev + "/events/x",
		"devices/" + hostileDev + "/Events", "$SYS/broker", "events", "devices//events", "x"} {
		for range 20 {
			out = append(out, hostileCase{class: "another topic", topic: tp, payload: enc(good()), code: notAuth})
		}
	}
	// A payload over the limit.
	for range 10 {
		ev := good()
		pad := make([]any, 20)
		for i := range pad {
			pad[i] = map[string]any{"key": fmt.Sprintf("p%d", i), "value": strings.Repeat("z", 4000)}
		}
		ev["items"] = pad
		add("oversize payload", bad, enc(ev))
	}
	return out
}

// protocolAbuses tries what a broken or hostile client may do to the
// protocol itself, each on a fresh connection, and checks the hub's answer
// and that it still serves; it returns how many it tried.
func protocolAbuses(t *testing.T, tn *testNet, addr, tok string) int {
	t.Helper()
	n := 0
	try := func(name string, f func(c *rawMQTT) error) {
		n++
		if err := f(dialRaw(t, addr)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	closedWithout := func(c *rawMQTT) error {
		typ, body, err := c.read(5 * time.Second)
		if err == nil && typ == 2 && len(body) > 1 && body[1] == 0 {
			return fmt.Errorf("accepted: CONNACK %x", body)
		}
		return c.closed(5 * time.Second)
	}
	try("garbage before CONNECT", func(c *rawMQTT) error {
		c.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		return closedWithout(c)
	})
	try("PUBLISH before CONNECT", func(c *rawMQTT) error {
		c.send(publishPacket("devices/"+hostileDev+"/events", 1, 1, false, []byte("{}")))
		return closedWithout(c)
	})
	try("CONNECT for another protocol", func(c *rawMQTT) error {
		p := connectPacket(hostileDev, hostileDev, tok, 30)
		copy(p[4:8], "MQTS")
		c.send(p)
		return closedWithout(c)
	})
	try("CONNECT of protocol version 9", func(c *rawMQTT) error {
		p := connectPacket(hostileDev, hostileDev, tok, 30)
		p[8] = 9
		c.send(p)
		return closedWithout(c)
	})
	try("a remaining length past the packet size limit", func(c *rawMQTT) error {
		c.send([]byte{0x10, 0xff, 0xff, 0xff, 0x7f})
		return closedWithout(c)
	})
	for _, w := range []struct{ name, user, pass string }{{"a wrong token", hostileDev, "cst_wrong"}, {"an unknown device", "nobody", tok}, {"an empty username", "", tok}} {
		try("login with "+w.name, func(c *rawMQTT) error {
			if code := c.login(w.user, w.user, w.pass); code == 0 {
				return fmt.Errorf("accepted")
			}
			return nil
		})
	}
	logged := func(c *rawMQTT, name string, first byte, body []byte, want byte) error {
		if code := c.login(hostileDev, hostileDev, tok); code != 0 {
			return fmt.Errorf("login: CONNACK 0x%02x", code)
		}
		c.send(packet(first, body))
		if code, err := c.disconnectCode(); err != nil || code != want {
			return fmt.Errorf("%s: DISCONNECT 0x%02x, %v; want 0x%02x", name, code, err, want)
		}
		return nil
	}
	try("a second CONNECT", func(c *rawMQTT) error {
		p := connectPacket(hostileDev, hostileDev, tok, 30)
		return logged(c, "second CONNECT", p[0], p[2:], 0x82)
	})
	try("packet id 0 at QoS 1", func(c *rawMQTT) error {
		p := publishPacket("devices/"+hostileDev+"/events", 0, 1, false, []byte("{}"))
		return logged(c, "packet id 0", p[0], p[2:], 0x82)
	})
	try("a wildcard topic", func(c *rawMQTT) error {
		p := publishPacket("devices/+/events", 1, 1, false, []byte("{}"))
		return logged(c, "wildcard topic", p[0], p[2:], 0x90)
	})
	try("SUBSCRIBE", func(c *rawMQTT) error {
		if code := c.login(hostileDev, hostileDev, tok); code != 0 {
			return fmt.Errorf("login: CONNACK 0x%02x", code)
		}
		c.send(packet(0x82, append(appendString([]byte{0, 1, 0}, "devices/#"), 1)))
		typ, body, err := c.read(5 * time.Second)
		if err != nil || typ != 9 || len(body) < 4 || body[3] < 0x80 {
			return fmt.Errorf("SUBACK: type %d, body %x, %v; want a refusal", typ, body, err)
		}
		return nil
	})
	return n
}
