package local_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// rawMQTT is an MQTT 5 client written byte by byte, for what a well-behaved
// client library will not send: QoS 2 to a broker that allows 1, retained
// messages, a CONNECT a byte at a time, PUBLISHes without waiting for
// their PUBACKs.
type rawMQTT struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawMQTT {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawMQTT{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// connectPacket is an MQTT 5 CONNECT with a clean start, a username and a
// password, and no properties.
func connectPacket(clientID, user, password string, keepAlive uint16) []byte {
	b := appendString(nil, "MQTT")
	b = append(b, 5, 0xC2)
	b = binary.BigEndian.AppendUint16(b, keepAlive)
	b = append(b, 0) // properties
	b = appendString(b, clientID)
	b = appendString(b, user)
	b = appendString(b, password)
	return packet(0x10, b)
}

// publishPacket is an MQTT 5 PUBLISH with no properties.
func publishPacket(topic string, id uint16, qos byte, retain bool, payload []byte) []byte {
	first := byte(0x30) | qos<<1
	if retain {
		first |= 1
	}
	b := appendString(nil, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	b = append(b, 0) // properties
	return packet(first, append(b, payload...))
}

// send writes raw bytes.
func (c *rawMQTT) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads one packet: its type (high nibble of the first byte) and its
// body. It waits at most d.
func (c *rawMQTT) read(d time.Duration) (byte, []byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	first, body, err := readRaw(c.r)
	return first >> 4, body, err
}

// readRaw reads one control packet and returns its first byte (type and
// flags) and the rest.
func readRaw(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

// login connects and returns the CONNACK's reason code.
func (c *rawMQTT) login(clientID, user, password string) byte {
	c.t.Helper()
	c.send(connectPacket(clientID, user, password, 30))
	typ, body, err := c.read(5 * time.Second)
	if err != nil || typ != 2 || len(body) < 2 {
		c.t.Fatalf("CONNACK: type %d, body %x, err %v", typ, body, err)
	}
	return body[1]
}

// disconnectCode reads until the broker's DISCONNECT and returns its
// reason code, skipping other packets; an error if the connection ends
// without one.
func (c *rawMQTT) disconnectCode() (byte, error) {
	for {
		typ, body, err := c.read(5 * time.Second)
		if err != nil {
			return 0, err
		}
		if typ == 14 {
			if len(body) == 0 {
				return 0, nil
			}
			return body[0], nil
		}
	}
}

// closed waits until the broker closes the connection, at most d, and
// says what it saw.
func (c *rawMQTT) closed(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		_, _, err := c.read(time.Until(deadline))
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("still open after %v", d)
		}
		if err != nil {
			return nil // reset by the peer
		}
	}
	return fmt.Errorf("still open after %v", d)
}
