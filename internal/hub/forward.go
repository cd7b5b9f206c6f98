package hub

import (
	"context"
	"crypto/ed25519"
	"time"

	"cissan/internal/bus"
	"cissan/internal/chain"
)

// MaxBatch bounds the submissions in one bus message.
const MaxBatch = 2000

// forwardLoop sends queued submissions to the master in signed batches,
// retrying until the master has them. A submission leaves the pool only
// when a validated block covers it, so a crash anywhere here loses nothing.
func (h *Hub) forwardLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		items := h.nextBatch()
		if len(items) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-h.sendSig:
			}
			continue
		}
		if err := h.send(ctx, items); err != nil {
			if ctx.Err() != nil {
				return
			}
			h.log.Warn("forward to master failed; will retry", "events", len(items), "err", err, "retry_in", backoff)
			h.requeue(items)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// nextBatch takes up to MaxBatch queued submissions still in the pool.
func (h *Hub) nextBatch() []*poolItem {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*poolItem
	i := 0
	for ; i < len(h.sendq) && len(out) < MaxBatch; i++ {
		it := h.sendq[i]
		if h.pool[it.uid] == it {
			out = append(out, it)
		}
	}
	h.sendq = h.sendq[i:]
	return out
}

func (h *Hub) requeue(items []*poolItem) {
	h.mu.Lock()
	h.sendq = append(items, h.sendq...)
	h.mu.Unlock()
}

func (h *Hub) send(ctx context.Context, items []*poolItem) error {
	raws := make([][]byte, len(items))
	for i, it := range items {
		raws[i] = it.raw
	}
	seq := h.batchSeq.Add(1)
	b := &bus.Batch{HubID: h.cfg.ID, Seq: seq, Entries: raws}
	b.Signature = ed25519.Sign(h.cfg.Key, chain.BatchMessage(h.net.ID, h.cfg.ID, seq, raws))
	refused, err := h.cfg.Bus.SubmitBatch(ctx, b)
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	h.mu.Lock()
	for _, it := range items {
		it.sentAt = now
	}
	h.mu.Unlock()
	if len(refused) > 0 {
		h.drop(refused)
	}
	return nil
}

// drop removes submissions the master refused for good.
func (h *Hub) drop(refused []bus.Refusal) {
	batch := h.led.Store().NewBatch()
	defer batch.Close()
	for _, r := range refused {
		h.stats.Refused.Add(1)
		h.log.Error("master refused event; it will not be logged", "uid", r.UID, "reason", r.Reason)
		if err := batch.DeletePool(r.UID, 0); err != nil {
			h.log.Error("drop refused event", "uid", r.UID, "err", err)
		}
	}
	if err := batch.Commit(); err != nil {
		h.log.Error("drop refused events", "err", err)
		return
	}
	h.mu.Lock()
	for _, r := range refused {
		delete(h.pool, r.UID)
	}
	h.mu.Unlock()
}

// resubmitStale queues again every submission sent longer than
// ResubmitAfter ago that no block has covered: the master may have lost it,
// or a block may never have reached this hub.
func (h *Hub) resubmitStale() {
	cutoff := h.cfg.Now().Add(-h.cfg.ResubmitAfter)
	h.mu.Lock()
	n := 0
	for _, it := range h.pool {
		if !it.sentAt.IsZero() && it.sentAt.Before(cutoff) {
			it.sentAt = time.Time{}
			h.sendq = append(h.sendq, it)
			n++
		}
	}
	h.mu.Unlock()
	if n > 0 {
		h.stats.Resubmitted.Add(int64(n))
		h.log.Warn("events submitted but not yet in a block; resubmitting", "events", n, "waited_over", h.cfg.ResubmitAfter)
		select {
		case h.sendSig <- struct{}{}:
		default:
		}
	}
}
