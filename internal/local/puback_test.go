package local_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
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

	conn, r := rawConnect(t, &net.Dialer{}, tn.MQTTAddrs()[0], dev, tok, 30)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))

	const n = 250 // within the Receive Maximum the CONNACK gives (256)
	var burst []byte
	bad := func(id int) bool { return id%7 == 3 }
	for id := 1; id <= n; id++ {
		payload := mustJSON(t, seedEvent(fmt.Sprintf("burst-%d", id), dev, ns, 20))
		if bad(id) {
			payload = []byte(`{"uid":"burst-bad","timestamp":1,"items":[`)
		}
		burst = append(burst, publishQoS1(dev, uint16(id), payload)...)
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

// A device that sends events but never reads its PUBACKs fills the
// socket's buffers; the hub must drop it rather than let the write of its
// PUBACKs stall the commit loop, which answers every device of the hub.
func TestDeviceThatReadsNoPubacksIsDropped(t *testing.T) {
	tn := startNet(t, t.TempDir(), 1)
	const ns = "acme/plant"
	addr := tn.MQTTAddrs()[0]
	stuckTok, liveTok := tn.register("dev-stuck", ns), tn.register("dev-live", ns)

	// A small receive buffer, set before the connection exists, so that
	// a few thousand unread PUBACKs fill the socket; keepalive 0, so that
	// no deadline of the broker's bounds a write to it either.
	small := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	stuck, _ := rawConnect(t, small, addr, "dev-stuck", stuckTok, 0)
	flooded := make(chan int, 1)
	go func() {
		sent := 0
		defer func() { flooded <- sent }()
		for sent < 200_000 {
			var burst []byte
			for range 100 {
				sent++
				payload := mustJSON(t, seedEvent(fmt.Sprintf("stuck-%d", sent), "dev-stuck", ns, 20))
				burst = append(burst, publishQoS1("dev-stuck", uint16(sent%65535+1), payload)...)
			}
			if _, err := stuck.Write(burst); err != nil {
				return // the hub closed the connection
			}
		}
	}()
	var sent int
	select {
	case sent = <-flooded:
	case <-time.After(30 * time.Second):
		t.Fatal("30 s on, a device that reads no PUBACK is neither dropped nor done sending 200,000 events: the hub's commit loop is stuck writing to it")
	}
	t.Logf("dropped after %d events", sent)

	live, r := rawConnect(t, &net.Dialer{}, addr, "dev-live", liveTok, 30)
	_ = live.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := live.Write(publishQoS1("dev-live", 1, mustJSON(t, seedEvent("live-1", "dev-live", ns, 20)))); err != nil {
		t.Fatal(err)
	}
	if typ, body := readPacket(t, r); typ != 0x40 || len(body) < 2 || len(body) > 2 && body[2] != 0 {
		t.Fatalf("the other device's PUBACK: type 0x%02x, body %x", typ, body)
	}
	tn.waitFinal("live-1")
}

// rawConnect opens an MQTT 5 session over a plain TCP connection, logged
// in as dev, and reads the CONNACK.
func rawConnect(t *testing.T, d *net.Dialer, addr, dev, tok string, keepalive uint16) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := conn.Write(connectPacket(dev, dev, tok, keepalive)); err != nil {
		t.Fatal(err)
	}
	typ, body := readPacket(t, r)
	if typ != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK: type 0x%02x, body %x", typ, body)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, r
}

// publishQoS1 frames a QoS 1 PUBLISH of payload to dev's events topic.
func publishQoS1(dev string, id uint16, payload []byte) []byte {
	p := appendString(nil, topic(dev))
	p = binary.BigEndian.AppendUint16(p, id)
	p = append(p, 0) // no properties
	return packet(0x32, append(p, payload...))
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
	typ, body, err := readRaw(r)
	if err != nil {
		t.Fatalf("read packet: %v", err)
	}
	return typ, body
}
