package hub

import (
	"context"
	"crypto/ed25519"
	"time"

	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/ledger"
)

// MaxBatch bounds the submissions in one bus message.
const MaxBatch = 2000

// forwardLoop sends queued submissions to the master in signed batches,
// retrying until the master has them. A submission leaves the pool only
// when a validated block covers it, so a crash anywhere here loses nothing.
func (h *Hub) forwardLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	var last time.Time // when the last batch went out
	for {
		if !h.linger(ctx, last) {
			return
		}
		items := h.nextBatch()
		if len(items) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-h.sendSig:
			}
			continue
		}
		last = time.Now()
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

// forwardLinger is the least time between two batches that are not full.
// Every batch costs the master a signature check and a synced write, so
// under load it pays to let a batch fill for a moment: at 10,000 events/s
// batches of 200 instead of a few dozen. An idle hub's first event goes out
// at once, since the last batch is older than this.
const forwardLinger = 20 * time.Millisecond

// linger waits until forwardLinger has passed since the last batch, or a
// full batch waits. It returns false when ctx ends.
func (h *Hub) linger(ctx context.Context, last time.Time) bool {
	wait := time.Until(last.Add(forwardLinger))
	if wait <= 0 {
		return true
	}
	h.mu.Lock()
	full := len(h.sendq) >= MaxBatch
	h.mu.Unlock()
	if full {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
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
		if h.pool[it.id] == it {
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

// drop removes submissions the master refused for good. Refusal.UID
// names the event by its event.ID.
func (h *Hub) drop(refused []bus.Refusal) {
	batch := h.led.Store().NewBatch()
	defer batch.Close()
	h.mu.Lock()
	var gone []string
	for _, r := range refused {
		h.stats.Refused.Add(1)
		h.log.Error("master refused event; it will not be logged", "event", r.UID, "reason", r.Reason)
		it := h.pool[r.UID]
		if it == nil {
			continue
		}
		if err := batch.DeletePool(it.key, 0); err != nil {
			h.log.Error("drop refused event", "event", r.UID, "err", err)
			continue
		}
		gone = append(gone, it.id)
	}
	h.mu.Unlock()
	if err := batch.Commit(); err != nil {
		h.log.Error("drop refused events", "err", err)
		return
	}
	h.retire(gone)
}

// resubmitStale queues again every submission sent longer than
// ResubmitAfter ago that no block has covered: the master may have lost it,
// or a block may never have reached this hub.
func (h *Hub) resubmitStale() {
	cutoff := h.cfg.Now().Add(-h.cfg.ResubmitAfter)
	h.mu.Lock()
	var stale []*poolItem
	for _, it := range h.pool {
		if !it.sentAt.IsZero() && it.sentAt.Before(cutoff) {
			stale = append(stale, it)
		}
	}
	h.mu.Unlock()
	// A block may already hold the event, through another hub, stored while
	// this hub's copy was being committed: retire those instead.
	ids := make([]string, len(stale))
	for i, it := range stale {
		ids[i] = it.id
	}
	var inChain, again []*poolItem
	err := h.led.Holds(ids, func(i int) chain.Hash { return stale[i].content }, func(i int, held ledger.Held) error {
		if held.Same {
			inChain = append(inChain, stale[i])
		} else {
			again = append(again, stale[i])
		}
		return nil
	})
	if err != nil {
		h.log.Error("look up pooled events in the chain; will look again", "err", err)
		return
	}
	if len(inChain) > 0 {
		h.retireLogged(inChain)
	}
	if len(again) == 0 {
		return
	}
	h.mu.Lock()
	for _, it := range again {
		if h.pool[it.id] == it {
			it.sentAt = time.Time{}
			h.sendq = append(h.sendq, it)
		}
	}
	h.mu.Unlock()
	h.stats.Resubmitted.Add(int64(len(again)))
	h.log.Warn("events submitted but not yet in a block; resubmitting", "events", len(again), "waited_over", h.cfg.ResubmitAfter)
	select {
	case h.sendSig <- struct{}{}:
	default:
	}
}

// retireLogged removes from the pool events that a stored block logs.
func (h *Hub) retireLogged(items []*poolItem) {
	batch := h.led.Store().NewBatch()
	defer batch.Close()
	ids := make([]string, len(items))
	for i, it := range items {
		if err := batch.DeletePool(it.key, 0); err != nil {
			h.log.Error("retire logged event", "event", it.id, "err", err)
			return
		}
		ids[i] = it.id
	}
	if err := batch.Commit(); err != nil {
		h.log.Error("retire logged events", "err", err)
		return
	}
	h.retire(ids)
}
