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
	byKey   map[string]pooled // event.VersionKey -> pooled
	byID    map[string]int    // event.ID -> how many versions are pooled
	full    chan struct{}     // signalled when the pool reaches MaxEntries

	mintMu sync.Mutex // one mint at a time
}

type pooled struct {
	seq     uint64
	key     string // event.VersionKey
	id      string // event.ID: the start of key
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
	m := &Master{cfg: cfg, led: cfg.Ledger, log: cfg.Log, byKey: map[string]pooled{}, byID: map[string]int{}, full: make(chan struct{}, 1)}
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
	return st.EachSeq(func(seq uint64, key string) error {
		rec, err := st.Pool(key)
		if err != nil {
			return fmt.Errorf("load pool %q: %w", key, err)
		}
		en, err := event.DecodeEntry(rec, m.led.Limits())
		if err != nil {
			return fmt.Errorf("load pool %q: %w", key, err)
		}
		p := pooled{seq: seq, key: key, id: en.Event.ID(), entry: en, content: event.ContentHash(&en.Event)}
		m.pending = append(m.pending, p)
		m.byKey[key] = p
		m.byID[p.id]++
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

// Pending reports whether an event of uid waits in the pool: the one of
// device deviceUID, or of any device if deviceUID is "". It scans the
// pool: it answers people (the API), not events.
func (m *Master) Pending(uid, deviceUID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pending {
		if ev := &p.entry.Event; ev.UID == uid && (deviceUID == "" || ev.DeviceUID == deviceUID) {
			return true
		}
	}
	return false
}

// HandleBatch checks a hub's batch and makes every new submission durable
// in the pool before returning. A submission already pooled or logged with
// the same content is a resubmission and is accepted without effect.
//
// One with other content under the same uid of the same device is another
// version of the event, and is logged too: two hubs acknowledged both to
// the device (each hub refuses a second version it can see), and nothing
// acknowledged may go missing. Its entry is the event's second version
// (event.VersionKey); the API lists both.
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
	ids := make([]string, len(entries))
	keys := make([]string, len(entries))
	contents := make([]chain.Hash, len(entries))
	for i, en := range entries {
		ids[i], contents[i] = en.Event.ID(), event.ContentHash(&en.Event)
		keys[i] = event.VersionKey(ids[i], contents[i])
	}
	var fresh []pooled
	raws := make([][]byte, 0, len(b.Entries))
	m.mu.Lock()
	logged, versions, err := m.logged(ids, keys, contents)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	for i, en := range entries {
		if logged[i] {
			continue
		}
		if _, ok := m.byKey[keys[i]]; ok { // pooled, or twice in this batch
			continue
		}
		if m.byID[ids[i]] > 0 && !versions[i] {
			versions[i] = true
			m.versionWarning(ids[i], "pool")
		}
		m.seq++
		p := pooled{seq: m.seq, key: keys[i], id: keys[i][:len(ids[i])], entry: en, content: contents[i]}
		m.byKey[p.key] = p // reserve, so a concurrent batch sees it
		m.byID[ids[i]]++
		fresh = append(fresh, p)
		raws = append(raws, b.Entries[i])
	}
	m.mu.Unlock()

	if len(fresh) > 0 {
		if err := m.persist(fresh, raws); err != nil {
			m.mu.Lock()
			for _, p := range fresh {
				m.unpool(p)
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
	return nil, nil
}

// logged says for each event whether the chain holds that very version,
// and whether it holds another (the event is a new version, which it
// reports). Only events not pooled are looked up in the chain, through one
// iterator; callers hold m.mu, under which a minted block leaves the pool
// only once it is stored, so no event slips between the two.
func (m *Master) logged(ids, keys []string, contents []chain.Hash) (same, versions []bool, err error) {
	same, versions = make([]bool, len(ids)), make([]bool, len(ids))
	var rest []int // indexes of events not pooled
	for i, k := range keys {
		if _, ok := m.byKey[k]; !ok {
			rest = append(rest, i)
		}
	}
	look := make([]string, len(rest))
	for j, i := range rest {
		look[j] = ids[i]
	}
	err = m.led.Holds(look, func(j int) chain.Hash { return contents[rest[j]] }, func(j int, held ledger.Held) error {
		i := rest[j]
		same[i] = held.Same
		if !held.Same && len(held.Others) > 0 {
			versions[i] = true
			m.versionWarning(ids[i], fmt.Sprintf("block %d", held.Others[0].Height))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("check uids: %w", err)
	}
	return same, versions, nil
}

// versionWarning reports an event taken in as another version of the
// event id, whose first version is where (a block, or the pool).
func (m *Master) versionWarning(id, where string) {
	uid, device, _ := strings.Cut(id, "/")
	m.cfg.Metrics.Version()
	m.log.Warn("device sent other content under one uid through two hubs; both are logged", "uid", uid, "device", device, "other_version", where)
}

// unpool forgets a pooled submission; callers hold m.mu.
func (m *Master) unpool(p pooled) {
	delete(m.byKey, p.key)
	if m.byID[p.id]--; m.byID[p.id] <= 0 {
		delete(m.byID, p.id)
	}
}

func (m *Master) persist(fresh []pooled, raws [][]byte) error {
	b := m.led.Store().NewBatch()
	defer b.Close()
	for i, p := range fresh {
		if err := b.PutPool(p.key, p.seq, raws[i]); err != nil {
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
		keys, seqs := make([]string, len(take)), make([]uint64, len(take))
		for i, p := range take {
			keys[i], seqs[i] = p.key, p.seq
		}
		if err := b.DeletePools(keys, seqs); err != nil {
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
		m.unpool(p)
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
