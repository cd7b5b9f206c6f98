package hub

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ackQueue holds one client's QoS 1 PUBLISHes not yet acknowledged, so
// that PUBACKs go out in the order of the PUBLISHes (MQTT 5, section 4.6)
// although events become durable, or are refused, in another order: a
// refusal found while parsing waits for the durable events before it.
type ackQueue struct {
	cl *mqtt.Client
	w  *nowWriter // nil if the connection is not a socket

	mu      sync.Mutex
	pending []*pendingAck
	queued  bool   // in the hub's list of queues to send (unsentQ)
	buf     []byte // PUBACKs encoded for one write
}

type pendingAck struct {
	id   uint16
	done bool
	err  error
}

// add queues the acknowledgement of PUBLISH id, and returns it with how
// many the queue now holds: the client's unacknowledged PUBLISHes.
func (q *ackQueue) add(id uint16) (*pendingAck, int) {
	a := &pendingAck{id: id}
	q.mu.Lock()
	q.pending = append(q.pending, a)
	n := len(q.pending)
	q.mu.Unlock()
	return a, n
}

func (h *Hub) ackQueue(cl *mqtt.Client) *ackQueue {
	if q, ok := h.acks.Load(cl); ok {
		return q.(*ackQueue)
	}
	q, _ := h.acks.LoadOrStore(cl, &ackQueue{cl: cl, w: newNowWriter(cl.Net.Conn)})
	return q.(*ackQueue)
}

// settle records the outcome of a's event. Its PUBACK goes out with the
// next sendAcks, in one write with every other PUBACK of the client ready
// by then: a commit group answers many events of each client at once, and
// a write per PUBACK was a twentieth of the hub's CPU.
func (h *Hub) settle(q *ackQueue, a *pendingAck, err error) {
	q.mu.Lock()
	a.done, a.err = true, err
	listed := q.queued
	q.queued = true
	q.mu.Unlock()
	if !listed {
		h.unsentMu.Lock()
		h.unsentQ = append(h.unsentQ, q)
		h.unsentMu.Unlock()
	}
}

// sendAcks sends the PUBACKs of every settled event whose turn has come.
func (h *Hub) sendAcks() {
	h.unsentMu.Lock()
	qs := h.unsentQ
	h.unsentQ = nil
	h.unsentMu.Unlock()
	for _, q := range qs {
		h.sendQueue(q)
	}
}

// sendQueue sends every PUBACK at the head of q whose outcome is known. It
// writes while holding q's lock, so two senders cannot overtake each other.
func (h *Hub) sendQueue(q *ackQueue) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queued = false
	cl := q.cl
	n := 0
	for ; n < len(q.pending) && q.pending[n].done; n++ {
		p := q.pending[n]
		if p.err == nil {
			// A success PUBACK in its shortest form, the same in MQTT 3.1.1
			// and 5 (MQTT 5, section 3.4.2.1: no reason code and no
			// properties mean success).
			q.buf = append(q.buf, packets.Puback<<4, 2, byte(p.id>>8), byte(p.id))
			continue
		}
		code := h.refused(cl, p.err)
		if cl.Properties.ProtocolVersion < 5 {
			// MQTT 3.1.1 has no negative PUBACK: close the connection so
			// the device does not take silence for success.
			q.flush()
			cl.Stop(code)
			continue
		}
		q.buf = appendRefusal(q.buf, cl, p.id, code)
	}
	q.flush()
	clear(q.pending[:n])
	q.pending = q.pending[n:]
}

// flush writes the encoded PUBACKs to the client in one system call, under
// the client's lock as the broker's own writes are. A client that gets no
// PUBACK (it has gone) sends again on its next connection, and the hub
// answers that as a retransmit. Callers hold q.mu.
//
// The write never waits for the client: the commit loop that calls it
// answers every client of the hub, and a client that left its PUBACKs
// unread until the socket's buffers are full (thousands of them) would
// stall them all. Such a client is disconnected instead. A write deadline
// would not do: the broker resets the connection's deadlines at every
// packet it reads, and a client that does not read can still send.
func (q *ackQueue) flush() {
	if len(q.buf) == 0 {
		return
	}
	if !q.cl.Closed() && q.cl.Net.Conn != nil {
		q.cl.Lock()
		var err error
		if q.w != nil {
			err = q.w.write(q.buf)
		} else {
			_, err = q.cl.Net.Conn.Write(q.buf)
		}
		q.cl.Unlock()
		if err != nil {
			q.cl.Stop(err)
		}
	}
	q.buf = q.buf[:0]
}

// errSlowReader stops a client whose socket cannot take its PUBACKs.
var errSlowReader = errors.New("the client does not read its PUBACKs")

// nowWriter writes to a socket only what it can take at once. It keeps
// its buffer and its callback, so that a write allocates nothing.
type nowWriter struct {
	rc  syscall.RawConn
	do  func(fd uintptr) bool // w.try, bound once
	b   []byte
	n   int
	err error
}

func newNowWriter(c net.Conn) *nowWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &nowWriter{rc: rc}
	w.do = w.try
	return w
}

// try is the raw write: the socket is non-blocking, and returning true
// tells the runtime not to wait for it to become writable.
func (w *nowWriter) try(fd uintptr) bool {
	for {
		w.n, w.err = syscall.Write(int(fd), w.b)
		if w.err != syscall.EINTR {
			return true
		}
	}
}

// write writes b if the socket can take all of it now, and fails with
// errSlowReader if not.
func (w *nowWriter) write(b []byte) error {
	w.b = b
	err := w.rc.Write(w.do)
	w.b = nil
	switch {
	case err != nil:
		return err
	case w.err == syscall.EAGAIN || w.err == nil && w.n < len(b):
		return errSlowReader
	}
	return w.err
}

// appendRefusal appends a PUBACK that refuses packet id with code, its
// reason string included as far as the client allows (MQTT 5, sections
// 3.1.2.11.4 and 3.1.2.11.7), as the broker's WritePacket encodes it.
func appendRefusal(dst []byte, cl *mqtt.Client, id uint16, code packets.Code) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Puback},
		PacketID:        id,
		ReasonCode:      code.Code,
		Properties:      packets.Properties{ReasonString: code.Reason},
		ProtocolVersion: cl.Properties.ProtocolVersion,
	}
	pk.Mods.MaxSize = cl.Properties.Props.MaximumPacketSize
	pk.Mods.DisallowProblemInfo = cl.Properties.Props.RequestProblemInfoFlag && cl.Properties.Props.RequestProblemInfo == 0
	var b bytes.Buffer
	_ = pk.PubackEncode(&b) // it reports no error; it drops properties that do not fit MaxSize
	return append(dst, b.Bytes()...)
}
