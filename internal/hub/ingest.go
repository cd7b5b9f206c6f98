package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/ledger"
	"cissan/internal/metrics"
	"cissan/internal/registry"
)

// Topic returns the only topic a device may publish its events to.
func Topic(deviceUID string) string { return "devices/" + deviceUID + "/events" }

// PUBACK reason codes for refused events (MQTT 5, section 3.4.2.1). The
// reason string travels in the PUBACK's Reason String property.
var (
	codeNotAuthorized = packets.ErrNotAuthorized.Code               // 0x87
	codeBadPayload    = packets.ErrPayloadFormatInvalid.Code        // 0x99
	codeConflict      = packets.ErrImplementationSpecificError.Code // 0x83
	codeUnspecified   = packets.ErrUnspecifiedError.Code            // 0x80
)

func refuse(code byte, format string, args ...any) packets.Code {
	return packets.Code{Code: code, Reason: fmt.Sprintf(format, args...)}
}

func (h *Hub) startMQTT() error {
	lim := h.led.Limits()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	caps.ReceiveMaximum = h.cfg.Guards.ReceiveMaximum
	// Payloads a little over the cap still arrive, so the device learns
	// why it was refused; far larger packets end the connection.
	caps.MaximumPacketSize = uint32(lim.MaxPayload + 64<<10)
	// The broker's own logs are per connection and listener; ours say what
	// matters, so only its warnings pass.
	s := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(brokerLog{h.log.Handler()}).With("component", "mqtt")})
	if err := s.AddHook(&guardHook{h: h, s: s}, nil); err != nil { // guard.go
		return fmt.Errorf("hub %s: mqtt guard hook: %w", h.cfg.ID, err)
	}
	if err := s.AddHook(&hook{h: h}, nil); err != nil {
		return fmt.Errorf("hub %s: mqtt hook: %w", h.cfg.ID, err)
	}
	// The broker counts its connections in a WaitGroup that each one
	// adds to when it is accepted, and that Close waits for: a connection
	// accepted while none is open adds to a zero count, concurrently with
	// a later Close, which the race detector reports (and Go's WaitGroup
	// forbids). Holding one count from here until Close keeps it above
	// zero while the broker serves.
	s.Listeners.ClientsWg.Add(1)
	if err := h.addListeners(s); err != nil { // listen.go: plain and TLS
		s.Listeners.ClientsWg.Done()
		return err
	}
	if err := s.Serve(); err != nil {
		return fmt.Errorf("hub %s: serve MQTT: %w", h.cfg.ID, err)
	}
	h.mqtt = s
	h.log.Info("MQTT listening", "addr", h.MQTTAddr(), "tls_addr", h.MQTTSAddr())
	return nil
}

// MQTTAddr returns the address the broker listens on.
func (h *Hub) MQTTAddr() string {
	if h.mqtt == nil {
		return ""
	}
	if l, ok := h.mqtt.Listeners.Get("tcp"); ok {
		return l.Address()
	}
	return ""
}

// DeviceChanged drops every live connection of a device whose status or
// token changed in the registry; it must log in again, which the registry
// decides.
func (h *Hub) DeviceChanged(uid string) {
	h.devMu.Lock()
	h.gen[uid]++
	var drop []*mqtt.Client
	for cl, d := range h.clients {
		if d.UID == uid {
			drop = append(drop, cl)
			delete(h.clients, cl)
		}
	}
	delete(h.budgets, uid) // its next login brings its limits again
	h.devMu.Unlock()
	for _, cl := range drop {
		h.log.Info("disconnecting device after registry change", "device", uid, "client", cl.ID)
		_ = h.mqtt.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
}

func (h *Hub) device(cl *mqtt.Client) (registry.Device, bool) {
	h.devMu.Lock()
	defer h.devMu.Unlock()
	d, ok := h.clients[cl]
	return d, ok
}

// brokerLog passes the broker's warnings and errors, except its report of
// every publish our hook refuses: the hub logs those itself, with the
// reason and without the whole packet.
type brokerLog struct{ slog.Handler }

func (b brokerLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && b.Handler.Enabled(ctx, l)
}

func (b brokerLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "publish packet error" {
		return nil
	}
	return b.Handler.Handle(ctx, r)
}

func (b brokerLog) WithAttrs(as []slog.Attr) slog.Handler { return brokerLog{b.Handler.WithAttrs(as)} }

func (b brokerLog) WithGroup(name string) slog.Handler { return brokerLog{b.Handler.WithGroup(name)} }

// hook connects the broker to the hub: logins go to the registry, events
// are taken in OnPublish (which runs before the PUBACK) and never reach an
// MQTT subscriber.
type hook struct {
	mqtt.HookBase
	h *Hub
}

func (k *hook) ID() string { return "cissan-hub" }

func (k *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnDisconnect}, []byte{b})
}

func (k *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	h := k.h
	uid, authenticate := h.credentials(cl, string(pk.Connect.Username), string(pk.Connect.Password)) // tlsauth.go
	h.devMu.Lock()
	gen := h.gen[uid]
	h.devMu.Unlock()
	d, err := authenticate(context.Background())
	if err != nil {
		// One line for the first failure of an address's burst; the rest
		// are summed up when it ends (logins.go).
		if h.logins.failed(remoteHost(cl), uid, h.cfg.Now()) {
			h.log.Info("device login refused", "device", uid, "remote", cl.Net.Remote, "err", err)
		}
		return false
	}
	h.devMu.Lock()
	defer h.devMu.Unlock()
	if h.gen[uid] != gen { // the registry changed the device while we asked
		h.log.Info("device login refused: registry changed during login", "device", uid)
		return false
	}
	// No other device's session can be taken over here: the client id
	// is the login (guardHook.OnConnect).
	h.clients[cl] = d
	h.budgetFor(d) // guard.go
	if tc, ok := tcpConn(cl.Net.Conn); ok {
		// A device's PUBACKs are 4 bytes each: a fixed 128 KiB buffer
		// holds tens of thousands, where the kernel would let a device
		// that reads none grow it to megabytes before the hub notices
		// (see ackQueue.flush).
		_ = tc.SetWriteBuffer(ackSocketBuffer)
	}
	return true
}

// ackSocketBuffer is the send buffer of a device's connection.
const ackSocketBuffer = 128 << 10

func (k *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	k.h.devMu.Lock()
	if d, ok := k.h.clients[cl]; ok {
		delete(k.h.clients, cl)
		k.h.releaseBudget(d.UID)
	}
	k.h.devMu.Unlock()
	k.h.acks.Delete(cl)
}

// OnACLCheck lets a logged-in device publish (ingest then refuses any topic
// but its own events topic, with a reason the device can read) and
// subscribe to nothing: no event ever goes out to a subscriber, and
// without subscriptions no Will message can reach one either.
func (k *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	_, ok := k.h.device(cl)
	return ok && write
}

// OnPublish takes an event in. At QoS 1 it does not wait for the event to
// be durable: it hands the event to the commit loop and returns at once,
// telling the broker to send nothing, and the hub writes the PUBACK itself
// once the event is on disk (or refused), in the order the client sent
// its PUBLISHes (see ackQueue). The broker reads a client's packets one
// after another, so waiting here would allow one event in flight per
// connection, however many the client sends, and every connection would
// wait a whole group commit per event.
func (k *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h := k.h
	if pk.FixedHeader.Qos == 1 {
		q := h.ackQueue(cl)
		a, n := q.add(pk.PacketID)
		if n > int(h.cfg.Guards.ReceiveMaximum) {
			// More unacknowledged PUBLISHes than the CONNACK allowed
			// (MQTT 5, section 3.3.4): what the broker's own quota would
			// do, had the hub not taken the acknowledgements over.
			h.log.Info("client disconnected: receive maximum exceeded", "client", cl.ID, "unacknowledged", n)
			h.stats.Rejected.Add(1)
			_ = h.mqtt.DisconnectClient(cl, packets.ErrReceiveMaximum)
			return pk, packets.ErrRejectPacket // a's queue goes with the connection
		}
		h.ingest(cl, pk, func(err error) { h.settle(q, a, err) })
		return pk, packets.ErrRejectPacket // the hub acknowledges it
	}
	done := make(chan error, 1)
	h.ingest(cl, pk, func(err error) { done <- err })
	err := <-done
	if err == nil {
		return pk, packets.CodeSuccessIgnore // forwarded to no subscriber
	}
	// QoS 0 has no PUBACK to carry a refusal; MQTT 3.1.1 clients are told
	// by a closed connection, as at QoS 1.
	if code := h.refused(cl, err); cl.Properties.ProtocolVersion < 5 {
		cl.Stop(code)
	}
	return pk, packets.ErrRejectPacket
}

// refused counts and logs a refusal and returns it as an MQTT reason code.
func (h *Hub) refused(cl *mqtt.Client, err error) packets.Code {
	h.stats.Rejected.Add(1)
	var code packets.Code
	if !errors.As(err, &code) {
		code = refuse(codeUnspecified, "%v", err)
	}
	h.cfg.Metrics.Rejected(h.rejectReason(code))
	if code.Code != codeRateTooHigh && code.Code != codeQuotaExceeded { // spend logs those, once in a while
		h.log.Info("event refused", "client", cl.ID, "code", fmt.Sprintf("0x%02x", code.Code), "reason", code.Reason)
	}
	return code
}

// rejectReason names a refusal for metrics. Code 0x80 covers both a
// store that failed and a hub that stopped while the event waited.
func (h *Hub) rejectReason(code packets.Code) string {
	if isDiskRefusal(code) {
		return metrics.ReasonDiskLow
	}
	switch code.Code {
	case codeNotAuthorized:
		return metrics.ReasonNotAuthorized
	case codeBadPayload:
		return metrics.ReasonBadPayload
	case codeConflict:
		return metrics.ReasonUIDConflict
	case codeRateTooHigh:
		return metrics.ReasonRateLimited
	case codeQuotaExceeded:
		return metrics.ReasonByteRateLimited
	}
	if h.ctx.Err() != nil {
		return metrics.ReasonShuttingDown
	}
	return metrics.ReasonStoreError
}

// ingest admits one event: it checks who sent it and what it says, then
// hands it to the commit loop, which calls done once the event is durable
// in the pool (nil) or refused. A refusal found here calls done at once.
// ingest blocks while the commit loop's queue is full, which holds the
// client's further packets back: the broker reads no more from it.
func (h *Hub) ingest(cl *mqtt.Client, pk packets.Packet, done func(error)) {
	req, err := h.admit(cl, pk)
	if err != nil {
		done(err)
		h.sendAcks()
		return
	}
	req.done = done
	select {
	case h.commits <- req:
	case <-h.ctx.Done():
		done(refuse(codeUnspecified, "hub is shutting down"))
		h.sendAcks()
	}
}

// admit checks an event's sender and content and makes its submission.
func (h *Hub) admit(cl *mqtt.Client, pk packets.Packet) (*commitReq, error) {
	d, ok := h.device(cl)
	if !ok {
		return nil, refuse(codeNotAuthorized, "device is not logged in or was deactivated")
	}
	if err := h.diskRefusal(); err != nil { // disk.go
		return nil, err
	}
	if err := h.spend(d.UID, len(pk.Payload)); err != nil { // guard.go
		return nil, err
	}
	if pk.TopicName != Topic(d.UID) {
		return nil, refuse(codeNotAuthorized, "device %s may publish only to %s", d.UID, Topic(d.UID))
	}
	ev, err := event.Parse(pk.Payload, h.led.Limits())
	if err != nil {
		return nil, refuse(codeBadPayload, "%v", err)
	}
	if ev.DeviceUID != d.UID {
		return nil, refuse(codeNotAuthorized, "device_uid %q is not the connected device %q", ev.DeviceUID, d.UID)
	}
	if ev.Namespace != d.Namespace {
		return nil, refuse(codeNotAuthorized, "namespace %q is not device %s's namespace %q", ev.Namespace, d.UID, d.Namespace)
	}
	en := event.Entry{Event: *ev, HubID: h.cfg.ID, ReceivedMs: h.cfg.Now().UnixMilli()}
	return &commitReq{id: ev.ID(), content: event.ContentHash(ev), raw: en.Encode()}, nil
}

// commitReq is one event waiting to be made durable.
type commitReq struct {
	id      string // event.ID
	key     string // event.VersionKey, once the commit loop stores it
	content chain.Hash
	raw     []byte
	done    func(error) // called once, from the commit loop
}

// commitLoop makes events durable in groups: it takes every request
// waiting, dedupes them against the pool and the chain, writes the new
// ones in one synced batch, and only then answers, so one fsync covers
// many PUBACKs.
func (h *Hub) commitLoop(ctx context.Context) {
	for {
		var reqs []*commitReq
		select {
		case <-ctx.Done():
			return
		case r := <-h.commits:
			reqs = append(reqs, r)
		}
	drain:
		for len(reqs) < 4096 {
			select {
			case r := <-h.commits:
				reqs = append(reqs, r)
			default:
				break drain
			}
		}
		h.commitGroup(reqs)
	}
}

func (h *Hub) commitGroup(reqs []*commitReq) {
	// The group's PUBACKs go out once all of it is answered: one write
	// per client rather than one per event.
	defer h.sendAcks()
	// Which events the pool holds, then which the chain holds, for the
	// whole group at once. In that order: a block retires its events from
	// the pool only once it is stored, so an event that leaves the pool
	// after the first look is found by the second.
	ids := make([]string, len(reqs))
	pooled := make([]*poolItem, len(reqs))
	h.mu.Lock()
	for i, r := range reqs {
		ids[i] = r.id
		pooled[i] = h.pool[r.id]
	}
	h.mu.Unlock()
	held := make([]ledger.Held, len(reqs))
	lerr := h.led.Holds(ids, func(i int) chain.Hash { return reqs[i].content }, func(i int, hd ledger.Held) error {
		held[i] = hd
		return nil
	})
	batch := h.led.Store().NewBatch()
	defer batch.Close()
	var fresh []*commitReq
	first := map[string]*commitReq{} // event.ID -> the request this group stores
	// A retransmit of an event this group stores is answered with that
	// event's outcome, after the commit: never before the event is durable.
	retransmits := map[*commitReq][]*commitReq{}
	for i, r := range reqs {
		if f, ok := first[r.id]; ok {
			if f.content == r.content {
				h.stats.Retransmits.Add(1)
				retransmits[f] = append(retransmits[f], r)
			} else {
				r.done(h.sameOrConflict(r, f.content, ""))
			}
			continue
		}
		if err, dup := h.duplicate(r, pooled[i], lerr, held[i]); dup {
			r.done(err)
			continue
		}
		r.key = event.VersionKey(r.id, r.content)
		if err := batch.PutPool(r.key, 0, r.raw); err != nil {
			r.done(refuse(codeUnspecified, "store event: %v", err))
			continue
		}
		first[r.id] = r
		fresh = append(fresh, r)
	}
	if len(fresh) == 0 {
		return
	}
	answer := func(r *commitReq, err error) {
		r.done(err)
		for _, w := range retransmits[r] {
			w.done(err)
		}
	}
	start := time.Now()
	err := batch.Commit()
	h.cfg.Metrics.CommitDuration(time.Since(start))
	if err != nil {
		h.log.Error("pool commit failed; events refused", "events", len(fresh), "err", err)
		for _, r := range fresh {
			answer(r, refuse(codeUnspecified, "store event: %v", err))
		}
		return
	}
	h.mu.Lock()
	for _, r := range fresh {
		it := &poolItem{id: r.id, key: r.key, raw: r.raw, content: r.content}
		h.pool[r.id] = it
		h.sendq = append(h.sendq, it)
	}
	h.mu.Unlock()
	select {
	case h.sendSig <- struct{}{}:
	default:
	}
	h.stats.Accepted.Add(int64(len(fresh)))
	h.cfg.Metrics.Accepted(len(fresh))
	for _, r := range fresh {
		answer(r, nil)
	}
}

// duplicate reports whether r's event is already pooled (it is it, if not
// nil) or logged (held is the chain's answer, or lerr if the lookup
// failed); if so the error is nil for a retransmit of the same event and
// a refusal for another event of this device under the same uid.
func (h *Hub) duplicate(r *commitReq, it *poolItem, lerr error, held ledger.Held) (error, bool) {
	switch {
	case it != nil:
		return h.sameOrConflict(r, it.content, "waiting for a block"), true
	case lerr != nil:
		return refuse(codeUnspecified, "check uid: %v", lerr), true
	case held.Same:
		h.stats.Retransmits.Add(1)
		return nil, true
	case len(held.Others) > 0:
		return conflict(r.id, fmt.Sprintf("in block %d", held.Others[0].Height)), true
	}
	return nil, false
}

func (h *Hub) sameOrConflict(r *commitReq, content chain.Hash, where string) error {
	if content == r.content {
		h.stats.Retransmits.Add(1)
		return nil
	}
	return conflict(r.id, where)
}

// conflict refuses an event whose device already sent other content under
// its uid, pooled or logged where says.
func conflict(id, where string) error {
	if where != "" {
		where = " (" + where + ")"
	}
	uid, device, _ := strings.Cut(id, "/")
	return refuse(codeConflict, "event uid %q is already used by another event of device %s%s", uid, device, where)
}
