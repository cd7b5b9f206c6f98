package local_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestPubacksFollowPublishOrder sends a burst of QoS 1 PUBLISHes on one
// connection without waiting, good events and malformed ones mixed, and
// reads the PUBACKs off the wire: the hub sends many in one write, and
// they must still come one per PUBLISH, in the PUBLISHes' order (MQTT 5,
// section 4.6), each with its own outcome, and every good event logged.
func TestPubacksFollowPublishOrder(t *testing.T) {
	tn := startNet(t, t.TempDir(), 1)
	const ns, dev = "acme/plant", "dev-burst"
	tok := tn.register(dev, ns)

	conn, err := net.Dial("tcp", tn.MQTTAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)

	var connect []byte
	connect = append(connect, 0, 4, 'M', 'Q', 'T', 'T', 5, 0xC2, 0, 30, 0) // username, password, clean start; no properties
	connect = appendString(appendString(appendString(connect, dev), dev), tok)
	if _, err := conn.Write(packet(0x10, connect)); err != nil {
		t.Fatal(err)
	}
	typ, body := readPacket(t, r)
	if typ != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK: type 0x%02x, body %x", typ, body)
	}

	const n = 300
	var burst []byte
	bad := func(id int) bool { return id%7 == 3 }
	for id := 1; id <= n; id++ {
		payload := mustJSON(t, seedEvent(fmt.Sprintf("burst-%d", id), dev, ns, 20))
		if bad(id) {
			payload = []byte(`{"uid":"burst-bad","timestamp":1,"items":[`)
		}
		var p []byte
		p = appendString(p, topic(dev))
		p = binary.BigEndian.AppendUint16(p, uint16(id))
		p = append(p, 0) // no properties
		burst = append(burst, packet(0x32, append(p, payload...))...)
	}
	if _, err := conn.Write(burst); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= n; want++ {
		typ, body := readPacket(t, r)
		if typ != 0x40 || len(body) < 2 {
			t.Fatalf("packet %d: type 0x%02x, body %x; want a PUBACK", want, typ, body)
		}
		id := int(binary.BigEndian.Uint16(body))
		code := byte(0)
		if len(body) > 2 {
			code = body[2]
		}
		if id != want {
			t.Fatalf("PUBACK for packet %d where %d was due: out of order", id, want)
		}
		switch {
		case bad(id) && code != 0x99:
			t.Fatalf("malformed event %d: reason code 0x%02x, want 0x99", id, code)
		case !bad(id) && code != 0:
			t.Fatalf("event %d: reason code 0x%02x, want success", id, code)
		}
	}
	for id := 1; id <= n; id++ {
		if !bad(id) {
			tn.waitFinal(fmt.Sprintf("burst-%d", id))
		}
	}
}

// packet frames an MQTT control packet: the fixed header's first byte, the
// remaining length, the rest.
func packet(first byte, rest []byte) []byte {
	out := []byte{first}
	for l := len(rest); ; {
		b := byte(l % 128)
		l /= 128
		if l > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if l == 0 {
			break
		}
	}
	return append(out, rest...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// readPacket reads one control packet and returns its type byte (flags
// included) and the rest.
func readPacket(t *testing.T, r *bufio.Reader) (byte, []byte) {
	t.Helper()
	typ, err := r.ReadByte()
	if err != nil {
		t.Fatalf("read packet: %v", err)
	}
	l, mul := 0, 1
	for {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("read packet length: %v", err)
		}
		l += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, l)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("read packet body: %v", err)
	}
	return typ, body
}
