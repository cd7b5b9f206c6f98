// Package sim simulates devices: each one logs in to a hub over MQTT 5
// (with the paho client), and publishes realistic sensor events at QoS 1,
// reporting for each event the hub's PUBACK reason code and reason.
package sim

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Device is one simulated device connected to a hub.
type Device struct {
	UID, Namespace string
	c              *paho.Client

	mu        sync.Mutex // guards the sensor state below, for concurrent publishers
	rng       *rand.Rand
	temp, hum float64
	seq       int
}

// Dial logs a device in to the hub at addr with its token.
func Dial(ctx context.Context, addr, uid, namespace, token string) (*Device, error) {
	return DialTLS(ctx, addr, nil, uid, namespace, token)
}

// DialTLS is Dial over TLS with tc (tls.go); a nil tc dials plain MQTT.
func DialTLS(ctx context.Context, addr string, tc *tls.Config, uid, namespace, token string) (*Device, error) {
	conn, err := dial(ctx, addr, tc)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: buffered(conn), ClientID: uid})
	ack, err := c.Connect(ctx, &paho.Connect{
		ClientID: uid, Username: uid, UsernameFlag: true, Password: []byte(token), PasswordFlag: true,
		KeepAlive: 30, CleanStart: true,
	})
	if err != nil {
		conn.Close()
		if ack != nil {
			return nil, fmt.Errorf("connect %s as %s: reason 0x%02x: %w", addr, uid, ack.ReasonCode, err)
		}
		return nil, fmt.Errorf("connect %s as %s: %w", addr, uid, err)
	}
	seed := uint64(len(uid))
	for _, b := range []byte(uid) {
		seed = seed*31 + uint64(b)
	}
	return &Device{UID: uid, Namespace: namespace, c: c, rng: rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano()))), temp: 21, hum: 45}, nil
}

// bufferedConn reads a TCP connection through a buffer. paho reads each
// packet's fixed header a byte at a time, and without a buffer each
// PUBACK cost three system calls; with one, a read takes in all the
// PUBACKs the hub sent in one write. paho reads from one goroutine only.
//
// It embeds the *net.TCPConn itself, not a net.Conn: paho writes a packet
// as net.Buffers, which go out in one writev, whole, only to the
// connection's own type. Written piece by piece, two publishers' packets
// interleave.
type bufferedConn struct {
	*net.TCPConn
	r *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func buffered(conn net.Conn) net.Conn {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return conn
	}
	return bufferedConn{tc, bufio.NewReader(tc)}
}

// Close disconnects the device.
func (d *Device) Close() error { return d.c.Disconnect(&paho.Disconnect{ReasonCode: 0}) }

// Result is the hub's answer to one publish.
type Result struct {
	UID    string
	Code   byte   // PUBACK reason code; 0 means logged (or a retransmit)
	Reason string // the hub's reason string for refusals
}

// OK reports whether the hub accepted the event.
func (r Result) OK() bool { return r.Code < 0x80 }

// Publish sends a raw payload to topic at QoS 1 and waits for the PUBACK.
// A refusal is a Result with a code, not an error; errors are transport
// failures.
func (d *Device) Publish(ctx context.Context, topic string, payload []byte) (Result, error) {
	resp, err := d.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload})
	if resp != nil {
		r := Result{Code: resp.ReasonCode}
		if resp.Properties != nil {
			r.Reason = resp.Properties.ReasonString
		}
		return r, nil
	}
	return Result{}, err
}

// Event builds the device's next sensor event: temperature, humidity and
// battery that drift as real sensors do, with a rare spike that the range
// analyzer flags.
func (d *Device) Event(now time.Time) map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	d.temp += d.rng.NormFloat64() * 0.2
	d.hum = math.Max(0, math.Min(100, d.hum+d.rng.NormFloat64()*0.5))
	temp := math.Round(d.temp*100) / 100
	if d.rng.IntN(500) == 0 {
		temp = 120 + math.Round(d.rng.Float64()*1000)/100 // a faulty reading
	}
	return map[string]any{
		"uid":       fmt.Sprintf("%s-%d-%d", d.UID, now.UnixMilli(), d.seq),
		"timestamp": now.UnixMilli(),
		"items": []map[string]any{
			{"key": "temperature", "value": temp},
			{"key": "humidity", "value": math.Round(d.hum*10) / 10},
			{"key": "battery", "value": math.Round(math.Max(0, 100-float64(d.seq)*0.001)*10) / 10},
		},
		"namespace":  d.Namespace,
		"device_uid": d.UID,
	}
}

// NextPayload returns the device's next event as JSON with its uid,
// padded to items items with extra numeric readings (channel_1, ...). The
// uid is the device uid, the time in Unix milliseconds and the device's
// sequence number, joined by '-' (the bench keeps the numbers, not the
// string).
//
// It writes the JSON by hand rather than through encoding/json: the bench
// calls it for every publish, in the same process as the network it
// measures, and the generic encoder cost more CPU than the hub's parser.
// The values are those of Event, in the same shape.
func (d *Device) NextPayload(now time.Time, items int) (string, []byte) {
	d.mu.Lock()
	d.seq++
	seq := d.seq
	d.temp += d.rng.NormFloat64() * 0.2
	d.hum = math.Max(0, math.Min(100, d.hum+d.rng.NormFloat64()*0.5))
	temp := math.Round(d.temp*100) / 100
	if d.rng.IntN(500) == 0 {
		temp = 120 + math.Round(d.rng.Float64()*1000)/100 // a faulty reading
	}
	hum := math.Round(d.hum*10) / 10
	d.mu.Unlock()
	ms := now.UnixMilli()
	uid := d.UID + "-" + strconv.FormatInt(ms, 10) + "-" + strconv.Itoa(seq)
	values := []struct {
		key string
		v   float64
	}{
		{"temperature", temp},
		{"humidity", hum},
		{"battery", math.Round(math.Max(0, 100-float64(seq)*0.001)*10) / 10},
	}
	if items > 0 && items < len(values) {
		values = values[:items]
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"device_uid":`...)
	b = strconv.AppendQuote(b, d.UID)
	b = append(b, `,"items":[`...)
	for i := 0; i < max(items, len(values)); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		key, v := "channel_"+strconv.Itoa(i), float64(i)+0.5
		if i < len(values) {
			key, v = values[i].key, values[i].v
		}
		b = append(b, `{"key":`...)
		b = strconv.AppendQuote(b, key)
		b = append(b, `,"value":`...)
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
		b = append(b, '}')
	}
	b = append(b, `],"namespace":`...)
	b = strconv.AppendQuote(b, d.Namespace)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, ms, 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendQuote(b, uid)
	return uid, append(b, '}')
}

// PublishEvent sends the device's next event to its topic.
func (d *Device) PublishEvent(ctx context.Context, now time.Time) (Result, error) {
	ev := d.Event(now)
	payload, err := json.Marshal(ev)
	if err != nil {
		return Result{}, err
	}
	r, err := d.Publish(ctx, "devices/"+d.UID+"/events", payload)
	r.UID = ev["uid"].(string)
	return r, err
}
