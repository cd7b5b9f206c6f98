// Package hub is a hub node: an embedded MQTT broker that admits events
// from registered devices, makes each durable before acknowledging it,
// forwards signed batches to the master, and validates every block the
// master mints against what it submitted before countersigning it.
package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"cissan/internal/analyze"
	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/ledger"
	"cissan/internal/metrics"
	"cissan/internal/registry"
	"cissan/internal/store"
)

// Registry authenticates devices.
type Registry interface {
	Authenticate(ctx context.Context, uid, token string) (registry.Device, error)
}

// Bus is what a hub needs from the bus.
type Bus interface {
	SubmitBatch(ctx context.Context, b *bus.Batch) ([]bus.Refusal, error)
	FetchBlocks(ctx context.Context, from uint64, max int) ([]*chain.Block, error)
	PublishValidation(ctx context.Context, v *chain.Validation) error
}

// Config configures a hub.
type Config struct {
	ID       string
	Key      ed25519.PrivateKey
	Ledger   *ledger.Ledger
	Registry Registry
	Bus      Bus
	MQTTAddr string // plain MQTT; "" for none
	// MQTTSAddr is the MQTT over TLS listener, served when TLS is set.
	MQTTSAddr string
	TLS       *tls.Config // nil: no TLS listener (see internal/tlsconf)
	// ResubmitAfter is how long a submission may wait for a block before
	// the hub sends it again. Default 10s.
	ResubmitAfter time.Duration
	Log           *slog.Logger
	Now           func() time.Time
	Metrics       *metrics.HubMetrics // nil records nothing
	Disk          DiskGuard           // nil: never refuse for lack of disk space
	// Guards bound what one client may cost the hub (guard.go).
	Guards Guards
}

// Stats are counters for status pages and metrics.
type Stats struct {
	Accepted    atomic.Int64 // events made durable and acknowledged
	Retransmits atomic.Int64 // repeats acknowledged without logging again
	Rejected    atomic.Int64 // events refused at ingest
	Resubmitted atomic.Int64 // submissions sent again after waiting too long
	Refused     atomic.Int64 // submissions the master refused
	Validated   atomic.Int64 // blocks accepted
	BadBlocks   atomic.Int64 // blocks rejected
}

// Hub is a running hub node.
type Hub struct {
	cfg   Config
	led   *ledger.Ledger
	net   *chain.Network
	log   *slog.Logger
	mqtt  *mqtt.Server
	stats Stats

	commits  chan *commitReq
	batchSeq atomic.Uint64 // numbers this hub's batches; starts at the boot time so restarts do not reuse numbers

	mu      sync.Mutex           // guards pool, sendq and unsent
	pool    map[string]*poolItem // by event.ID: a hub pools one version of an event
	sendq   []*poolItem
	unsent  []*chain.Validation // verdicts whose publication failed
	early   []*chain.Validation // other hubs' verdicts on blocks not stored yet
	sendSig chan struct{}

	blockMu sync.Mutex // blocks are validated one at a time

	ctx       context.Context // from Start; ends the loops and pending ingests
	loops     sync.WaitGroup
	closeOnce sync.Once

	acks     sync.Map // *mqtt.Client -> *ackQueue
	unsentMu sync.Mutex
	unsentQ  []*ackQueue // queues with PUBACKs ready to send; see settle

	devMu   sync.Mutex
	clients map[*mqtt.Client]registry.Device
	gen     map[string]uint64  // per device uid, bumped on every registry change
	budgets map[string]*budget // per device uid with a live connection (guard.go)
	logins  *loginGuard
}

type poolItem struct {
	id      string // event.ID
	key     string // event.VersionKey: the store's key
	raw     []byte // submission bytes
	content chain.Hash
	sentAt  time.Time // zero while queued
}

// New builds a hub and reloads its durable pool. Start runs it.
func New(cfg Config) (*Hub, error) {
	if cfg.ResubmitAfter <= 0 {
		cfg.ResubmitAfter = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Guards.defaults()
	h := &Hub{
		cfg: cfg, led: cfg.Ledger, net: cfg.Ledger.Network(), log: cfg.Log.With("hub", cfg.ID),
		commits: make(chan *commitReq, 4096),
		pool:    map[string]*poolItem{},
		sendSig: make(chan struct{}, 1),
		clients: map[*mqtt.Client]registry.Device{},
		gen:     map[string]uint64{},
		budgets: map[string]*budget{},
	}
	h.logins = newLoginGuard(cfg.Guards.LoginFailures, cfg.Guards.LoginWindow, h.log)
	err := h.led.Store().EachPool(func(key string, raw []byte) error {
		en, err := event.DecodeEntry(raw, h.led.Limits())
		if err != nil {
			return fmt.Errorf("load pool %q: %w", key, err)
		}
		it := &poolItem{id: en.Event.ID(), key: key, raw: raw, content: event.ContentHash(&en.Event)}
		h.pool[it.id] = it
		h.sendq = append(h.sendq, it)
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.batchSeq.Store(uint64(cfg.Now().UnixNano()))
	if len(h.sendq) > 0 {
		h.log.Info("pool reloaded; forwarding again", "events", len(h.sendq))
	}
	return h, nil
}

// ID returns the hub's id.
func (h *Hub) ID() string { return h.cfg.ID }

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Ledger returns the hub's chain copy.
func (h *Hub) Ledger() *ledger.Ledger { return h.led }

// PoolSize returns the number of events waiting for a block.
func (h *Hub) PoolSize() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pool)
}

// Pending reports whether an event of uid waits in this hub's pool: the
// one of device deviceUID, or of any device if deviceUID is "".
func (h *Hub) Pending(uid, deviceUID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if deviceUID != "" {
		_, ok := h.pool[event.ID(uid, deviceUID)]
		return ok
	}
	for id := range h.pool {
		if strings.HasPrefix(id, uid+"/") {
			return true
		}
	}
	return false
}

// Start opens the MQTT listener and starts the hub's loops; they stop when
// ctx ends. Close then stops the broker.
func (h *Hub) Start(ctx context.Context) error {
	h.ctx = ctx
	if err := h.startMQTT(); err != nil {
		return err
	}
	for _, loop := range []func(context.Context){h.commitLoop, h.forwardLoop, h.syncLoop} {
		h.loops.Add(1)
		go func() {
			defer h.loops.Done()
			loop(ctx)
		}()
	}
	return nil
}

// Close stops the MQTT broker and waits for the hub's loops, which end
// with the context given to Start.
func (h *Hub) Close() error {
	var err error
	if h.mqtt != nil {
		h.closeOnce.Do(func() {
			h.mqtt.Listeners.ClientsWg.Done() // the hold startMQTT took
			err = h.mqtt.Close()
		})
	}
	h.loops.Wait()
	return err
}

// syncLoop catches up with the master at start and then periodically, so
// a block lost on the way is fetched, and resubmits what waits too long.
func (h *Hub) syncLoop(ctx context.Context) {
	t := time.NewTicker(h.cfg.ResubmitAfter / 2)
	defer t.Stop()
	h.republishValidations(ctx, bus.QueueDepth)
	for {
		if err := h.CatchUp(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("catch up", "err", err)
		}
		h.resubmitStale()
		h.retryValidations(ctx)
		h.logins.sweep(h.cfg.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// republishValidations sends this hub's stored validations of its newest
// blocks again. A validation is stored before it is published, so a crash
// can lose it on the way (the in-process bus holds up to QueueDepth per
// receiver in memory); the block would then never become final, since
// the hub never validates a stored block again. Repeats are harmless.
func (h *Hub) republishValidations(ctx context.Context, n uint64) {
	top := h.led.Height()
	for ht := top - min(top, n); ht < top && ctx.Err() == nil; ht++ {
		_, vals, err := h.led.Accepting(ht)
		if err != nil {
			h.log.Warn("read own validation", "height", ht, "err", err)
			continue
		}
		for i := range vals {
			if vals[i].HubID != h.cfg.ID {
				continue
			}
			if err := h.cfg.Bus.PublishValidation(ctx, &vals[i]); err != nil && ctx.Err() == nil {
				h.log.Warn("publish validation", "height", ht, "err", err)
			}
		}
	}
}

// retryValidations publishes again the verdicts whose publication failed,
// for instance while the bus was reconnecting: without them a block would
// never reach its quorum.
func (h *Hub) retryValidations(ctx context.Context) {
	h.mu.Lock()
	vs := h.unsent
	h.unsent = nil
	h.mu.Unlock()
	for i, v := range vs {
		if err := h.cfg.Bus.PublishValidation(ctx, v); err != nil {
			h.mu.Lock()
			h.unsent = append(h.unsent, vs[i:]...)
			h.mu.Unlock()
			return
		}
	}
}

// CatchUp fetches and validates every block the master has that this hub
// lacks. It goes no faster than the hub indexes (Ledger.WaitIndexQueue):
// a hub far behind would otherwise store blocks its indexer then reads
// back from the store.
func (h *Hub) CatchUp(ctx context.Context) error {
	h.blockMu.Lock()
	defer h.blockMu.Unlock()
	return h.catchUpLocked(ctx, ^uint64(0), true)
}

// catchUpLocked validates the blocks below upTo that this hub lacks;
// paced, it waits for the indexer as CatchUp says. HandleBlock does not:
// the blocks it fills in may wait for this hub's verdict to be final.
func (h *Hub) catchUpLocked(ctx context.Context, upTo uint64, paced bool) error {
	for {
		from := h.led.Height()
		if from >= upTo {
			return nil
		}
		blks, err := h.cfg.Bus.FetchBlocks(ctx, from, 64)
		if err != nil {
			return fmt.Errorf("fetch blocks from %d: %w", from, err)
		}
		if len(blks) == 0 {
			return nil
		}
		for _, b := range blks {
			if b.Header.Height >= upTo {
				return nil
			}
			if paced {
				if err := h.led.WaitIndexQueue(ctx); err != nil {
					return err
				}
			}
			if err := h.processBlock(ctx, b); err != nil {
				return err
			}
		}
	}
}

// HandleBlock validates a block from the master, stores it if it passes,
// and publishes this hub's signed verdict either way.
func (h *Hub) HandleBlock(ctx context.Context, b *chain.Block) error {
	h.blockMu.Lock()
	defer h.blockMu.Unlock()
	if b.Header.Height < h.led.Height() {
		return nil // already have it
	}
	if err := h.catchUpLocked(ctx, b.Header.Height, false); err != nil {
		return err
	}
	if b.Header.Height != h.led.Height() {
		return fmt.Errorf("block %d: still missing blocks from %d", b.Header.Height, h.led.Height())
	}
	return h.processBlock(ctx, b)
}

// ErrRejected wraps the reason a hub rejected a block.
var ErrRejected = errors.New("block rejected")

func (h *Hub) processBlock(ctx context.Context, b *chain.Block) error {
	start := time.Now()
	covered, err := h.validate(b)
	hash := b.Header.Hash()
	// A hub enrolled at a later height checks and stores the blocks before
	// it like any other, but has no say on them.
	me := h.led.Network().Hub(h.cfg.ID)
	member := me != nil && me.FromHeight <= b.Header.Height
	v := &chain.Validation{HubID: h.cfg.ID, Height: b.Header.Height, BlockHash: hash, Verdict: chain.Accept}
	if err != nil {
		v.Verdict, v.Reason = chain.Reject, err.Error()
		h.stats.BadBlocks.Add(1)
		h.log.Error("block rejected", "height", b.Header.Height, "reason", v.Reason)
	}
	v.Sign(h.net.ID, h.cfg.Key)
	if err == nil {
		// The verdict is stored in the block's own batch, so that a crash
		// cannot leave a stored block without it: the hub never validates
		// a stored block again, and republishValidations can send only
		// what is stored.
		if err := h.led.Append(ctx, covered.block, covered.entries, func(batch *store.Batch) error {
			if err := batch.DeletePools(covered.keys, nil); err != nil {
				return err
			}
			if !member {
				return nil
			}
			return batch.PutValidation(v)
		}); err != nil {
			return err
		}
		h.retire(covered.ids)
		h.recordEarly(b.Header.Height)
		h.stats.Validated.Add(1)
	}
	h.cfg.Metrics.Validated(v.Verdict.String())
	h.cfg.Metrics.ValidateDuration(time.Since(start))
	if member {
		if perr := h.cfg.Bus.PublishValidation(ctx, v); perr != nil {
			h.log.Warn("publish validation; will retry", "height", v.Height, "err", perr)
			h.mu.Lock()
			h.unsent = append(h.unsent, v)
			h.mu.Unlock()
		}
	}
	if v.Verdict == chain.Reject {
		return fmt.Errorf("%w: %s", ErrRejected, v.Reason)
	}
	return nil
}

// recordEarly stores the validations of block height that arrived before
// it, and drops any kept for lower heights.
func (h *Hub) recordEarly(height uint64) {
	h.mu.Lock()
	var now, later []*chain.Validation
	for _, v := range h.early {
		switch {
		case v.Height == height:
			now = append(now, v)
		case v.Height > height:
			later = append(later, v)
		}
	}
	h.early = later
	h.mu.Unlock()
	for _, v := range now {
		if err := h.led.RecordValidation(v); err != nil {
			h.log.Debug("validation not recorded", "from", v.HubID, "height", v.Height, "err", err)
		}
	}
}

type coverage struct {
	block   *chain.Block // the block as checked; see chain.Block.Checked
	entries []*event.Entry
	ids     []string // pool entries the block covers, by event.ID
	keys    []string // and by event.VersionKey
}

// validate runs every check before countersigning: the block's own
// integrity (chain.Block.Check), the analyzers' tags, and that every entry
// naming this hub is exactly what this hub submitted.
func (h *Hub) validate(b *chain.Block) (*coverage, error) {
	checked, entries, err := b.Checked(h.led.Expect())
	if err != nil {
		return nil, err
	}
	an, _, err := h.led.AnalyzersFor(b.Controls)
	if err != nil {
		return nil, err
	}
	if _, err := ledger.NextNetwork(h.led.Network(), b.Header.Height, b.Controls); err != nil {
		return nil, err
	}
	// Tags and earlier blocks first, without the pool lock, which ingest
	// needs for every event.
	ids := make([]string, len(entries))
	for i, en := range entries {
		if want := an.Tags(&en.Event); !analyze.Equal(want, en.Tags) {
			return nil, fmt.Errorf("entry %d (uid %q of %s): analyzer tags %v are not reproduced (this hub computes %v)", i, en.Event.UID, en.Event.DeviceUID, en.Tags, want)
		}
		ids[i] = en.Event.ID()
	}
	// An event the chain holds under its id may be another version of it,
	// which the block may log; the very same version it may not.
	var logged error
	err = h.led.Holds(ids, func(i int) chain.Hash { return event.ContentHash(&entries[i].Event) }, func(i int, held ledger.Held) error {
		if held.Same {
			logged = fmt.Errorf("entry %d (uid %q of %s) is already logged in block %d", i, entries[i].Event.UID, entries[i].Event.DeviceUID, held.At.Height)
			return logged
		}
		return nil
	})
	if logged != nil {
		return nil, logged
	}
	if err != nil {
		return nil, fmt.Errorf("check earlier blocks: %w", err)
	}
	cov := &coverage{block: checked, entries: entries}
	var sub []byte
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, en := range entries {
		it, mine := h.pool[ids[i]]
		if en.HubID == h.cfg.ID {
			if !mine {
				return nil, fmt.Errorf("entry %d (uid %q of %s) names this hub, which never submitted it", i, en.Event.UID, en.Event.DeviceUID)
			}
			s := en.Submission()
			if sub = s.AppendEncode(sub[:0]); string(sub) != string(it.raw) {
				return nil, fmt.Errorf("entry %d (uid %q of %s) misstates what this hub submitted", i, en.Event.UID, en.Event.DeviceUID)
			}
		} else if mine && event.ContentHash(&en.Event) != it.content {
			// Another hub's version of the event: this hub's waits
			// for a block of its own.
			mine = false
		}
		if mine {
			cov.ids, cov.keys = append(cov.ids, it.id), append(cov.keys, it.key)
		}
	}
	return cov, nil
}

// retire drops covered events (by event.ID) from the in-memory pool.
func (h *Hub) retire(ids []string) {
	if len(ids) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		delete(h.pool, id)
	}
}

// maxEarly bounds the validations a hub keeps for blocks it has not yet.
const maxEarly = 4096

// HandleValidation stores another hub's validation of a block this hub
// has; one for a block it has not yet is kept until the block is stored.
func (h *Hub) HandleValidation(ctx context.Context, v *chain.Validation) error {
	if v.HubID == h.cfg.ID {
		return nil
	}
	if v.Height >= h.led.Height() {
		h.mu.Lock()
		if len(h.early) < maxEarly {
			h.early = append(h.early, v)
		}
		h.mu.Unlock()
		return nil
	}
	if err := h.led.RecordValidation(v); err != nil {
		h.log.Debug("validation not recorded", "from", v.HubID, "height", v.Height, "err", err)
		return err
	}
	return nil
}
