package hub

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ackQueue holds one client's QoS 1 PUBLISHes not yet acknowledged, so
// that PUBACKs go out in the order of the PUBLISHes (MQTT 5, section 4.6)
// although events become durable, or are refused, in another order: a
// refusal found while parsing waits for the durable events before it.
type ackQueue struct {
	cl *mqtt.Client

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

func (q *ackQueue) add(id uint16) *pendingAck {
	a := &pendingAck{id: id}
	q.mu.Lock()
	q.pending = append(q.pending, a)
	q.mu.Unlock()
	return a
}

func (h *Hub) ackQueue(cl *mqtt.Client) *ackQueue {
	if q, ok := h.acks.Load(cl); ok {
		return q.(*ackQueue)
	}
	q, _ := h.acks.LoadOrStore(cl, &ackQueue{cl: cl})
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
		q.flush()
		code := h.refused(cl, p.err)
		if cl.Properties.ProtocolVersion < 5 {
			// MQTT 3.1.1 has no negative PUBACK: close the connection so
			// the device does not take silence for success.
			cl.Stop(code)
			continue
		}
		// A client that has gone gets no PUBACK; it sends again on its
		// next connection and the hub answers that as a retransmit.
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Puback},
			PacketID:    p.id,
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: code.Reason},
		})
	}
	q.flush()
	clear(q.pending[:n])
	q.pending = q.pending[n:]
}

// flush writes the encoded PUBACKs to the client in one system call, under
// the client's lock as the broker's own writes are. The broker's keepalive
// deadline on the connection bounds the write. Callers hold q.mu.
func (q *ackQueue) flush() {
	if len(q.buf) == 0 {
		return
	}
	if !q.cl.Closed() && q.cl.Net.Conn != nil {
		q.cl.Lock()
		_, _ = q.cl.Net.Conn.Write(q.buf)
		q.cl.Unlock()
	}
	q.buf = q.buf[:0]
}
