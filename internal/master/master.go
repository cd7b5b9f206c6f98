// Package master is the master node: it takes hubs' batches of
// submissions, checks and dedupes them across the whole network, keeps
// them in a durable pool, and at a fixed interval mints the next block,
// with the analyzers' tags, signs it, stores it and broadcasts it. It
// collects hubs' validations and so knows which blocks are final.
package master

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/ledger"
	"cissan/internal/metrics"
	"cissan/internal/store"
)

// Publisher is how the master sends blocks out.
type Publisher interface {
	PublishBlock(ctx context.Context, b *chain.Block) error
}

// DefaultBlockInterval is the time between blocks unless configured.
const DefaultBlockInterval = time.Second

// IndexWhenFinal is the ledger option (ledger.Config.IndexWhenFinal) a
// master with this block interval opens its ledger with: its index waits
// for a block's finality, but never past the next block.
func IndexWhenFinal(interval time.Duration) time.Duration {
	if interval <= 0 {
		return DefaultBlockInterval
	}
	return interval
}

// Config configures a master.
type Config struct {
	Ledger        *ledger.Ledger
	Key           ed25519.PrivateKey
	Bus           Publisher
	BlockInterval time.Duration // default DefaultBlockInterval
	MaxEntries    int           // a block is minted early when the pool holds this many; default 50,000
	// Analyzers is the configuration recorded in the first block when the
	// chain has none; later changes go through SetAnalyzers.
	Analyzers *analyze.Config
	Log       *slog.Logger
	Now       func() time.Time
	Metrics   *metrics.MasterMetrics // nil records nothing
	Disk      DiskGuard              // nil: never pause for lack of disk space
}

// Master is a running master node.
type Master struct {
	cfg Config
	led *ledger.Ledger
	log *slog.Logger

	mu      sync.Mutex // guards the pool below
	seq     uint64
	pending []pooled          // arrival order
	byUID   map[string]pooled // uid -> pooled
	full    chan struct{}     // signalled when the pool reaches MaxEntries

	mintMu sync.Mutex // one mint at a time
}

type pooled struct {
	seq     uint64
	uid     string
	entry   *event.Entry
	content chain.Hash
}

// New starts a master from its ledger, reloading the durable pool.
func New(cfg Config) (*Master, error) {
	if cfg.BlockInterval <= 0 {
		cfg.BlockInterval = DefaultBlockInterval
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 50_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Master{cfg: cfg, led: cfg.Ledger, log: cfg.Log, byUID: map[string]pooled{}, full: make(chan struct{}, 1)}
	if err := m.loadPool(); err != nil {
		return nil, err
	}
	if err := m.initAnalyzers(cfg.Analyzers); err != nil {
		return nil, err
	}
	return m, nil
}

// Pool record: submission entry bytes (no tags). Its arrival order is kept
// in the store's sequence records.
func (m *Master) loadPool() error {
	st := m.led.Store()
	return st.EachSeq(func(seq uint64, uid string) error {
		rec, err := st.Pool(uid)
		if err != nil {
			return fmt.Errorf("load pool %q: %w", uid, err)
		}
		en, err := event.DecodeEntry(rec, m.led.Limits())
		if err != nil {
			return fmt.Errorf("load pool %q: %w", uid, err)
		}
		p := pooled{seq: seq, uid: uid, entry: en, content: event.ContentHash(&en.Event)}
		m.pending = append(m.pending, p)
		m.byUID[uid] = p
		m.seq = max(m.seq, seq)
		return nil
	})
}

// Ledger returns the master's chain.
func (m *Master) Ledger() *ledger.Ledger { return m.led }

// PoolSize returns the number of submissions waiting for a block.
func (m *Master) PoolSize() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// Pending reports whether uid waits in the pool.
func (m *Master) Pending(uid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.byUID[uid]
	return ok
}

// HandleBatch checks a hub's batch and makes every new submission durable
// in the pool before returning. A submission whose uid is already pooled or
// logged with the same content is a resubmission and is accepted without
// effect; one with other content is refused.
func (m *Master) HandleBatch(ctx context.Context, b *bus.Batch) ([]bus.Refusal, error) {
	if err := m.diskRefusal(b); err != nil {
		return nil, err
	}
	net := m.led.Network()
	hub := net.Hub(b.HubID)
	if hub == nil {
		m.cfg.Metrics.Refused("batch", "unknown_hub")
		m.log.Warn("batch from unknown hub refused", "hub", b.HubID, "seq", b.Seq)
		return nil, fmt.Errorf("%w: batch from unknown hub %q", chain.ErrInvalid, b.HubID)
	}
	if !ed25519.Verify(hub.PublicKey, chain.BatchMessage(net.ID, b.HubID, b.Seq, b.Entries), b.Signature) {
		m.cfg.Metrics.Refused("batch", "bad_signature")
		m.log.Warn("batch with bad signature refused", "hub", b.HubID, "seq", b.Seq)
		return nil, fmt.Errorf("%w: batch %d from %s: signature does not verify", chain.ErrInvalid, b.Seq, b.HubID)
	}
	// Check the whole batch before reserving anything, so that a bad
	// batch leaves no trace.
	entries := make([]*event.Entry, len(b.Entries))
	for i, raw := range b.Entries {
		en, err := event.DecodeEntry(raw, m.led.Limits())
		if err != nil {
			m.cfg.Metrics.Refused("batch", "malformed")
			m.log.Warn("malformed batch refused", "hub", b.HubID, "seq", b.Seq, "entry", i, "err", err)
			return nil, fmt.Errorf("%w: batch %d from %s entry %d: %w", chain.ErrInvalid, b.Seq, b.HubID, i, err)
		}
		if en.HubID != b.HubID || len(en.Tags) != 0 {
			m.cfg.Metrics.Refused("batch", "malformed")
			m.log.Warn("malformed batch refused", "hub", b.HubID, "seq", b.Seq, "entry", i, "hub_id", en.HubID)
			return nil, fmt.Errorf("%w: batch %d from %s entry %d: hub_id %q or tags do not belong in a submission", chain.ErrInvalid, b.Seq, b.HubID, i, en.HubID)
		}
		entries[i] = en
	}
	uids := make([]string, len(entries))
	contents := make([]chain.Hash, len(entries))
	for i, en := range entries {
		uids[i], contents[i] = en.Event.UID, event.ContentHash(&en.Event)
	}
	var refused []bus.Refusal
	var fresh []pooled
	raws := make([][]byte, 0, len(b.Entries))
	m.mu.Lock()
	reasons, err := m.duplicates(uids, contents)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	for i, en := range entries {
		uid := uids[i]
		if reason := reasons[i]; reason != "" {
			if reason != dupSame {
				refused = append(refused, bus.Refusal{UID: uid, Reason: reason})
			}
			continue
		}
		if p, ok := m.byUID[uid]; ok { // twice in this batch
			if p.content != contents[i] {
				refused = append(refused, bus.Refusal{UID: uid, Reason: "event uid already used by another event (pending)"})
			}
			continue
		}
		m.seq++
		p := pooled{seq: m.seq, uid: uid, entry: en, content: contents[i]}
		m.byUID[uid] = p // reserve, so a concurrent batch sees it
		fresh = append(fresh, p)
		raws = append(raws, b.Entries[i])
	}
	m.mu.Unlock()

	if len(fresh) > 0 {
		if err := m.persist(fresh, raws); err != nil {
			m.mu.Lock()
			for _, p := range fresh {
				delete(m.byUID, p.uid)
			}
			m.mu.Unlock()
			return nil, err
		}
		m.mu.Lock()
		m.pending = append(m.pending, fresh...)
		n := len(m.pending)
		m.mu.Unlock()
		if n >= m.cfg.MaxEntries {
			select {
			case m.full <- struct{}{}:
			default:
			}
		}
	}
	for _, r := range refused {
		m.log.Warn("submission refused", "hub", b.HubID, "uid", r.UID, "reason", r.Reason)
	}
	return refused, nil
}

const dupSame = "same"

// duplicates says for each uid whether it is already pooled or logged:
// dupSame for the same content, a refusal reason for other content, ""
// if new. It looks in the pool first and then, for the rest, in the chain
// through one iterator; callers hold m.mu, under which a minted block
// leaves the pool only once it is stored, so no uid slips between the two.
func (m *Master) duplicates(uids []string, contents []chain.Hash) ([]string, error) {
	reasons := make([]string, len(uids))
	var rest []int // indexes of uids not pooled
	for i, uid := range uids {
		p, ok := m.byUID[uid]
		switch {
		case !ok:
			rest = append(rest, i)
		case p.content == contents[i]:
			reasons[i] = dupSame
		default:
			reasons[i] = "event uid already used by another event (pending)"
		}
	}
	look := make([]string, len(rest))
	for j, i := range rest {
		look[j] = uids[i]
	}
	err := m.led.Store().LocateAll(look, func(j int, loc store.Located, found bool) error {
		if !found {
			return nil
		}
		i := rest[j]
		logged, err := m.led.ContentAt(loc)
		if err != nil {
			return err
		}
		if logged == contents[i] {
			reasons[i] = dupSame
		} else {
			reasons[i] = fmt.Sprintf("event uid already used by another event (block %d)", loc.Height)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check uids: %w", err)
	}
	return reasons, nil
}

func (m *Master) persist(fresh []pooled, raws [][]byte) error {
	b := m.led.Store().NewBatch()
	defer b.Close()
	for i, p := range fresh {
		if err := b.PutPool(p.uid, p.seq, raws[i]); err != nil {
			return fmt.Errorf("pool: %w", err)
		}
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	return nil
}

// Run mints blocks until ctx ends.
func (m *Master) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.BlockInterval)
	defer t.Stop()
	var paused bool
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.full:
		}
		if m.mintPaused(&paused) {
			continue
		}
		if _, err := m.Mint(ctx); err != nil {
			m.log.Error("mint", "err", err)
		}
	}
}

// Mint mints one block from the pool's oldest submissions, if any, and
// returns it (nil when the pool is empty).
func (m *Master) Mint(ctx context.Context) (*chain.Block, error) {
	m.mintMu.Lock()
	defer m.mintMu.Unlock()
	start := time.Now()
	m.mu.Lock()
	n := min(len(m.pending), m.cfg.MaxEntries)
	take := append([]pooled(nil), m.pending[:n]...)
	m.mu.Unlock()
	controls, err := m.pendingControls()
	if err != nil {
		return nil, err
	}
	if n == 0 && len(controls) == 0 {
		return nil, nil
	}
	an, _, err := m.led.AnalyzersFor(controls)
	if err != nil {
		return nil, err
	}
	entries := make([]*event.Entry, n)
	raws := make([][]byte, n)
	for i, p := range take {
		en := *p.entry
		en.Tags = an.Tags(&en.Event)
		entries[i] = &en
		raws[i] = en.Encode()
	}
	x := m.led.Expect()
	now := m.cfg.Now().UnixMilli()
	blk := chain.Seal(chain.Header{
		Network:     x.Network,
		Height:      x.Height,
		Prev:        x.Prev,
		MintTimeMs:  now,
		HistoryRoot: x.HistoryRoot,
	}, raws, controls, m.cfg.Key)
	err = m.led.Append(ctx, blk, entries, func(b *store.Batch) error {
		uids, seqs := make([]string, len(take)), make([]uint64, len(take))
		for i, p := range take {
			uids[i], seqs[i] = p.uid, p.seq
		}
		if err := b.DeletePools(uids, seqs); err != nil {
			return err
		}
		if len(controls) > 0 {
			if err := b.DeleteMeta(pendingConfigKey); err != nil {
				return err
			}
			return b.DeleteMeta(pendingHubsKey)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.cfg.Metrics.MintDuration(time.Since(start))
	m.mu.Lock()
	m.pending = m.pending[n:]
	for _, p := range take {
		delete(m.byUID, p.uid)
	}
	m.mu.Unlock()
	m.log.Info("minted block", "height", blk.Header.Height, "entries", n, "controls", len(controls), "hash", fmt.Sprintf("%x", blk.Header.Hash()))
	if err := m.cfg.Bus.PublishBlock(ctx, blk); err != nil {
		return blk, fmt.Errorf("publish block %d: %w", blk.Header.Height, err)
	}
	return blk, nil
}

// HandleValidation records a hub's validation of a stored block.
func (m *Master) HandleValidation(ctx context.Context, v *chain.Validation) error {
	if err := m.led.RecordValidation(v); err != nil {
		m.cfg.Metrics.Refused("validation", validationRefusal(err))
		m.log.Warn("validation refused", "hub", v.HubID, "height", v.Height, "err", err)
		return err
	}
	if v.Verdict == chain.Reject {
		m.log.Warn("hub rejected block", "hub", v.HubID, "height", v.Height, "reason", v.Reason)
	}
	return nil
}

// validationRefusal names why a validation was refused, for the metric.
func validationRefusal(err error) string {
	switch msg := err.Error(); {
	case strings.Contains(msg, "unknown hub"), strings.Contains(msg, "validates only from"):
		return "unknown_hub"
	case strings.Contains(msg, "signature"):
		return "bad_signature"
	case strings.Contains(msg, "block hash"), errors.Is(err, store.ErrNotFound):
		return "wrong_block"
	}
	return "malformed"
}

// FetchBlocks serves stored blocks to hubs catching up.
func (m *Master) FetchBlocks(ctx context.Context, from uint64, max int) ([]*chain.Block, error) {
	return m.led.Blocks(from, min(max, 64))
}
