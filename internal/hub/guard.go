package hub

import (
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"cissan/internal/registry"
	"cissan/internal/tlsconf"
)

// Guards bound what one client may cost a hub, so that no device can hurt
// another: its events and bytes per second, its unacknowledged PUBLISHes,
// how long it may take to say who it is, and how often a login may fail.
// The zero value of a field takes its default.
type Guards struct {
	// DeviceRate is the events per second a device may send to this hub,
	// in bursts of up to a second's worth, unless the registry sets its
	// own (registry.Limits). Default DefaultDeviceRate.
	DeviceRate float64
	// DeviceBytes is the payload bytes per second a device may send, in
	// bursts of a second's worth or one largest event, whichever is more.
	// Default DefaultDeviceBytes.
	DeviceBytes float64
	// ReceiveMaximum is how many QoS 1 PUBLISHes a connection may have
	// unacknowledged (MQTT 5 Receive Maximum, sent in the CONNACK); one
	// more ends the connection with DISCONNECT 0x93. Default 256.
	ReceiveMaximum uint16
	// ConnectTimeout is how long a connection may take from its accept to
	// its whole CONNECT packet, TLS handshake included. Default 10 s.
	ConnectTimeout time.Duration
	// MaxKeepAlive is the longest keep-alive interval, in seconds, that an
	// MQTT 5 client gets; one asking for more, or for none, is told this
	// (Server Keep Alive). The broker closes a connection silent for one
	// and a half intervals. Default 600.
	MaxKeepAlive uint16
	// LoginFailures is how many failed logins one address, or one
	// username, may make in LoginWindow before further attempts are
	// refused without asking the registry (CONNACK 0x9F) until the window
	// ends. Default 20 per minute.
	LoginFailures int
	LoginWindow   time.Duration
}

// Defaults of Guards. A sensor sends an event every second or every few
// minutes; 2,000 events and 2 MiB a second are far above any sensor and
// above what cissan bench asks of each of its devices (about 1,100 a
// second at full rate), and still hold one device to a small share of a
// hub that takes 30,000 a second.
const (
	DefaultDeviceRate     = 2000
	DefaultDeviceBytes    = 2 << 20
	DefaultConnectTimeout = 10 * time.Second
)

func (g *Guards) defaults() {
	if g.DeviceRate <= 0 {
		g.DeviceRate = DefaultDeviceRate
	}
	if g.DeviceBytes <= 0 {
		g.DeviceBytes = DefaultDeviceBytes
	}
	if g.ReceiveMaximum == 0 {
		g.ReceiveMaximum = 256
	}
	if g.ConnectTimeout <= 0 {
		g.ConnectTimeout = DefaultConnectTimeout
	}
	if g.MaxKeepAlive == 0 {
		g.MaxKeepAlive = 600
	}
	if g.LoginFailures <= 0 {
		g.LoginFailures = 20
	}
	if g.LoginWindow <= 0 {
		g.LoginWindow = time.Minute
	}
}

// Refusals of the guards (MQTT 5 reason codes).
var (
	codeRateTooHigh   = packets.ErrMessageRateTooHigh.Code // 0x96
	codeQuotaExceeded = packets.ErrQuotaExceeded.Code      // 0x97
)

// bucket is a token bucket: rate tokens a second, at most burst saved.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate, burst float64, now time.Time) bucket {
	return bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// take takes n tokens if there are n.
func (b *bucket) take(n float64, now time.Time) bool {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
		b.last = now
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// budget is what one device may still send to this hub; its connections
// share it.
type budget struct {
	mu            sync.Mutex
	events, bytes bucket
	refused       int       // events refused since the last log line
	logged        time.Time // when the last line about them was logged
	refs          int       // live connections of the device
}

// budgetLogEvery is how often a device over its limits gets a log line:
// one line per refused event would let a flood flood the log too.
const budgetLogEvery = 10 * time.Second

// budgetFor returns device d's budget, made with its limits from the
// registry or the hub's defaults; callers hold h.devMu. A budget lives as
// long as a connection of its device, so that reconnecting does not fill
// it again, and its limits are those of the device's first live login
// (a registry change drops every connection: see DeviceChanged).
func (h *Hub) budgetFor(d registry.Device) *budget {
	if b, ok := h.budgets[d.UID]; ok {
		b.refs++
		return b
	}
	g := h.cfg.Guards
	rate, bytes := g.DeviceRate, g.DeviceBytes
	if d.Limits.Rate > 0 {
		rate = d.Limits.Rate
	}
	if d.Limits.Bytes > 0 {
		bytes = d.Limits.Bytes
	}
	now := h.cfg.Now()
	b := &budget{
		events: newBucket(rate, max(rate, 1), now),
		bytes:  newBucket(bytes, max(bytes, float64(h.led.Limits().MaxPayload)), now),
		refs:   1,
	}
	h.budgets[d.UID] = b
	return b
}

// releaseBudget forgets a connection of device uid; callers hold h.devMu.
func (h *Hub) releaseBudget(uid string) {
	if b, ok := h.budgets[uid]; ok {
		if b.refs--; b.refs <= 0 {
			delete(h.budgets, uid)
		}
	}
}

// spend takes one event of size bytes from device uid's budget, or says
// why not.
func (h *Hub) spend(uid string, size int) error {
	h.devMu.Lock()
	b := h.budgets[uid]
	h.devMu.Unlock()
	if b == nil {
		return nil
	}
	now := h.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	switch {
	case !b.events.take(1, now):
		err = refuse(codeRateTooHigh, "device %s sends more than %g events/s", uid, b.events.rate)
	case !b.bytes.take(float64(size), now):
		b.events.tokens++ // not taken in after all
		err = refuse(codeQuotaExceeded, "device %s sends more than %g payload bytes/s", uid, b.bytes.rate)
	default:
		return nil
	}
	if b.refused++; now.Sub(b.logged) >= budgetLogEvery {
		h.log.Warn("device over its limits; its events are refused", "device", uid, "refused", b.refused,
			"max_rate", b.events.rate, "max_bytes_rate", b.bytes.rate, "last", err)
		b.refused, b.logged = 0, now
	}
	return err
}

// guardHook enforces the MQTT 5 rules the broker leaves to its hooks and
// the guards that apply before a login: QoS 2, retained and wildcard
// PUBLISHes end the connection, the client id must be the login,
// keep-alive is bounded, and an address that failed too often waits.
type guardHook struct {
	mqtt.HookBase
	h *Hub
	s *mqtt.Server
}

func (k *guardHook) ID() string { return "cissan-guards" }

func (k *guardHook) Provides(b byte) bool { return b == mqtt.OnPacketRead || b == mqtt.OnConnect }

// OnPacketRead refuses what this broker does not support before the broker
// handles it: it would take a QoS 2 PUBLISH as QoS 1, keep a retained one,
// and drop one with a wildcard in its topic without a word. MQTT 5
// (sections 3.2.2.3.4, 3.2.2.3.5 and 3.3.2.1) says a server that
// advertised Maximum QoS 1 and Retain Available 0 answers them with
// DISCONNECT 0x9B, 0x9A and 0x90; an MQTT 3.1.1 client is disconnected.
func (k *guardHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	var code packets.Code
	switch {
	case pk.FixedHeader.Qos > 1:
		code = packets.ErrQosNotSupported
	case pk.FixedHeader.Retain:
		code = packets.ErrRetainNotSupported
	case strings.ContainsAny(pk.TopicName, "+#"):
		code = packets.ErrTopicNameInvalid // MQTT 5, section 3.3.2.1: a malformed PUBLISH
	case !mqtt.IsValidFilter(pk.TopicName, true):
		// A topic the broker drops without a PUBACK ("$SYS/..."): the
		// client would send it again for ever. Under a name the broker
		// passes on, the hub refuses it as any other topic, 0x87.
		pk.TopicName = "not-an-events-topic"
		return pk, nil
	default:
		return pk, nil
	}
	k.h.stats.Rejected.Add(1)
	k.h.log.Info("client disconnected", "client", cl.ID, "code", code.Code, "reason", code.Reason)
	k.disconnect(cl, code)
	return pk, packets.ErrRejectPacket // the broker drops the packet (any other error it ignores)
}

func (k *guardHook) disconnect(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion < 5 {
		cl.Stop(code)
		return
	}
	_ = k.s.DisconnectClient(cl, code)
}

// OnConnect runs before the login. A client id names a session, and the
// broker gives a session to whoever connects with its id: the client id
// must be the device uid the client logs in as (the username, or the uid
// its client certificate names when it sends none), else CONNACK 0x85; an
// empty one becomes the login. A device's second connection so takes over
// its own session only.
func (k *guardHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	h := k.h
	addr, user := remoteHost(cl), string(pk.Connect.Username)
	if h.logins.throttled(addr, h.cfg.Now()) {
		code := packets.ErrConnectionRateExceeded
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrServerUnavailable
		}
		_ = k.s.SendConnack(cl, code, false, nil)
		return code
	}
	login := user
	if login == "" {
		login = certUID(cl)
	}
	if pk.Connect.ClientIdentifier == "" && login != "" {
		// A client that leaves its id to the server (MQTT 5, section
		// 3.1.3.1; 3.1.1 with a clean session) gets its login, and an
		// MQTT 5 client is told so in the CONNACK.
		cl.ID = login
		if cl.Properties.Props.AssignedClientID != "" {
			cl.Properties.Props.AssignedClientID = login
		}
	}
	if cl.ID != login {
		h.logins.failed(addr, user, h.cfg.Now())
		_ = k.s.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	if ka := h.cfg.Guards.MaxKeepAlive; cl.Properties.ProtocolVersion >= 5 && (cl.State.Keepalive == 0 || cl.State.Keepalive > ka) {
		cl.State.Keepalive, cl.State.ServerKeepalive = ka, true
	}
	return nil
}

// certUID is the one device uid the client's verified certificate names,
// or "".
func certUID(cl *mqtt.Client) string {
	if c := peerCert(cl); c != nil {
		if names := tlsconf.DeviceNames(c); len(names) == 1 {
			return names[0]
		}
	}
	return ""
}

// remoteHost is the client's address without its port.
func remoteHost(cl *mqtt.Client) string {
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		return cl.Net.Remote
	}
	return host
}

// deadlineListener gives every connection a deadline for its CONNECT: a
// socket that never sends one, or sends it a byte a second, is closed
// when it passes. The broker sets the connection's keep-alive deadline
// once the CONNECT is read.
type deadlineListener struct {
	*listeners.TCP
	timeout time.Duration
}

func (l *deadlineListener) Serve(establish listeners.EstablishFn) {
	l.TCP.Serve(func(id string, c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(l.timeout))
		return establish(id, c)
	})
}
