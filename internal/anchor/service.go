// Package anchor timestamps the chain on Bitcoin. At each interval the
// master's anchor service publishes a transaction whose OP_RETURN output
// carries the newest block's hash; every earlier block is covered through
// that block's history_root. The service is its own wallet (one key, one
// address, outputs found by scanning blocks), follows each transaction to
// the configured number of confirmations, anchors again when a Bitcoin
// reorg or a refusal drops one, replaces a stuck one by fee, and keeps in
// a SQLite file which blocks each anchor covers.
package anchor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"cissan/internal/bitcoin"
	"cissan/internal/chain"
)

// Chain is the master's chain as the service reads it.
type Chain interface {
	Height() uint64
	Header(height uint64) (*chain.Header, error)
}

// Config configures the service. Zero durations and rates take the
// defaults given.
type Config struct {
	RPC           *bitcoin.Client
	Network       string        // mainnet, testnet, signet or regtest
	KeyFile       string        // WIF; created (mode 0600) when absent
	Dir           string        // where anchor.db goes
	Chain         Chain         // the master's chain
	Interval      time.Duration // between anchors; 10m
	Confirmations int64         // for an anchor to count as confirmed; 6
	FeeRate       float64       // sat/vB when the node has no estimate; 2
	MaxFeeRate    float64       // cap on the node's estimate; 100
	BumpAfter     time.Duration // unconfirmed this long: replace by fee; 1h
	Poll          time.Duration // how often the node is asked; 10s
	LowFundsDays  float64       // warn when funds last fewer days; 7
	// RescanFrom is the first Bitcoin height scanned for outputs paying
	// a key given by the operator; -1 picks one (0 on regtest, else two
	// weeks back). A key created here starts at the node's tip.
	RescanFrom int64
	Log        *slog.Logger
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Minute
	}
	if c.Confirmations <= 0 {
		c.Confirmations = 6
	}
	if c.FeeRate <= 0 {
		c.FeeRate = 2
	}
	if c.MaxFeeRate <= 0 {
		c.MaxFeeRate = 100
	}
	if c.BumpAfter <= 0 {
		c.BumpAfter = time.Hour
	}
	if c.Poll <= 0 {
		c.Poll = 10 * time.Second
	}
	if c.LowFundsDays <= 0 {
		c.LowFundsDays = 7
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Service anchors one chain.
type Service struct {
	cfg    Config
	params *chaincfg.Params
	key    *Key
	db     *db

	mu      sync.RWMutex // guards st and the fields below; the loop is the only writer
	st      state
	mempool map[chainhash.Hash]bool
	rate    float64 // the fee rate the last anchor used or would use
	lastErr string
	errAt   time.Time
	chainOK bool // the node's network was checked
	lowWarn time.Time

	leavesMu  sync.Mutex   // guards the stored history tree and the two fields below
	histSize  uint64       // blocks whose history tree nodes are stored
	histRight []chain.Hash // per level, a left sibling waiting for its right one
}

// New loads (or creates) the key and the state. It does not contact the
// node: Run does, and keeps trying while the node is down.
func New(cfg Config) (*Service, error) {
	cfg.defaults()
	params, err := bitcoin.Params(cfg.Network)
	if err != nil {
		return nil, err
	}
	if cfg.RPC == nil || cfg.Chain == nil || cfg.KeyFile == "" || cfg.Dir == "" {
		return nil, errors.New("anchor: RPC, Chain, KeyFile and Dir are required")
	}
	key, created, err := LoadKey(cfg.KeyFile, params)
	if err != nil {
		return nil, err
	}
	d, err := openDB(filepath.Join(cfg.Dir, "anchor.db"))
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, params: params, key: key, db: d, st: state{txs: map[chainhash.Hash]*wtx{}}, rate: cfg.FeeRate}
	if err := d.load(context.Background(), &s.st); err != nil {
		d.close()
		return nil, fmt.Errorf("anchor state: %w", err)
	}
	if created {
		if err := d.setMeta("key-created", []byte(strconv.FormatInt(time.Now().UnixMilli(), 10))); err != nil {
			d.close()
			return nil, err
		}
		cfg.Log.Warn("anchor key created: fund this address to anchor on Bitcoin", "address", key.Address.String(), "file", cfg.KeyFile, "network", cfg.Network)
	} else {
		cfg.Log.Info("anchor key", "address", key.Address.String(), "network", cfg.Network)
	}
	return s, nil
}

// Address returns the wallet's address, which the operator funds.
func (s *Service) Address() string { return s.key.Address.String() }

// Close closes the state file; call it after Run returns.
func (s *Service) Close() error { return s.db.close() }

// Run follows Bitcoin and anchors until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	for {
		more := s.step(ctx)
		wait := s.cfg.Poll
		if more {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// step does one round: scan new Bitcoin blocks, re-send what the node
// lost, replace what is stuck, anchor when due. It reports whether blocks
// remain to scan.
func (s *Service) step(ctx context.Context) (more bool) {
	more, err := s.sync(ctx)
	if err == nil {
		err = s.rebroadcast(ctx)
	}
	if err == nil {
		err = s.bump(ctx)
	}
	if err == nil && !more {
		err = s.anchorIfDue(ctx)
	}
	s.checkFunds()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if err.Error() != s.lastErr {
			s.cfg.Log.Error("anchor", "err", err)
		}
		s.lastErr, s.errAt = err.Error(), time.Now()
	} else {
		s.lastErr = ""
	}
	return more
}

// scanBatch bounds the blocks read in one round, so that status stays
// fresh while a long rescan runs.
const scanBatch = 200

// sync brings the scanned chain to the node's best chain: it undoes
// blocks a reorg removed, then reads new blocks for the wallet's
// transactions.
func (s *Service) sync(ctx context.Context) (bool, error) {
	if !s.chainOK {
		net, err := s.cfg.RPC.Chain(ctx)
		if err != nil {
			return false, err
		}
		if net != s.cfg.Network {
			return false, fmt.Errorf("the Bitcoin node at %s is on %s, anchoring is configured for %s", s.cfg.RPC.URL(), net, s.cfg.Network)
		}
		s.chainOK = true
	}
	best, err := s.cfg.RPC.BlockCount(ctx)
	if err != nil {
		return false, err
	}
	if err := s.unwind(ctx); err != nil {
		return false, err
	}
	from := s.st.tip() + 1
	if len(s.st.scanned) == 0 {
		if from, err = s.firstHeight(ctx, best); err != nil {
			return false, err
		}
	}
	to := min(best, from+scanBatch-1)
	for h := from; h <= to; h++ {
		hash, err := s.cfg.RPC.BlockHash(ctx, h)
		if err != nil {
			return false, err
		}
		blk, err := s.cfg.RPC.Block(ctx, hash)
		if err != nil {
			return false, err
		}
		if n := len(s.st.scanned); n > 0 && blk.Header.PrevBlock != s.st.scanned[n-1].hash {
			return true, nil // the chain moved under us: unwind next round
		}
		if err := s.scanBlock(h, blk); err != nil {
			return false, err
		}
	}
	mp, err := s.cfg.RPC.Mempool(ctx)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.mempool = mp
	s.mu.Unlock()
	return to < best, nil
}

// firstHeight picks where the first scan starts: for a key created
// here, the first block mined after its creation (less the two hours a
// block's time may lag), since nothing could pay it earlier.
func (s *Service) firstHeight(ctx context.Context, best int64) (int64, error) {
	created, err := s.db.meta("key-created")
	if err != nil {
		return 0, err
	}
	switch {
	case created != nil:
		ms, err := strconv.ParseInt(string(created), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("anchor state: key-created %q: %w", created, err)
		}
		since := time.UnixMilli(ms).Add(-2 * time.Hour)
		lo, hi := int64(0), best+1 // the first height whose block is not older than since
		for lo < hi {
			mid := (lo + hi) / 2
			hash, err := s.cfg.RPC.BlockHash(ctx, mid)
			if err != nil {
				return 0, err
			}
			hdr, err := s.cfg.RPC.Header(ctx, hash)
			if err != nil {
				return 0, err
			}
			if hdr.Timestamp.Before(since) {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return min(lo, best), nil
	case s.cfg.RescanFrom >= 0:
		return min(s.cfg.RescanFrom, best), nil
	case s.cfg.Network == "regtest":
		return 0, nil
	}
	from := max(0, best-2016)
	s.cfg.Log.Warn("anchor: scanning for funds from two weeks back; set the rescan height for older ones", "from", from)
	return from, nil
}

// unwind finds where the scanned chain leaves the node's best chain and
// forgets what lies above: coinbases vanish, other transactions go back
// to unconfirmed (the node returns them to its mempool, or rebroadcast
// does).
func (s *Service) unwind(ctx context.Context) error {
	n := len(s.st.scanned)
	fork := n
	for fork > 0 {
		b := s.st.scanned[fork-1]
		hash, err := s.cfg.RPC.BlockHash(ctx, b.height)
		var rpcErr *bitcoin.RPCError
		if errors.As(err, &rpcErr) { // above the node's tip
			fork--
			continue
		}
		if err != nil {
			return err
		}
		if hash == b.hash {
			break
		}
		fork--
	}
	if fork == n {
		return nil
	}
	forkHeight := int64(-1)
	if fork > 0 {
		forkHeight = s.st.scanned[fork-1].height
	}
	if err := s.db.rollback(forkHeight); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Log.Warn("Bitcoin reorg: blocks left the best chain", "from_height", forkHeight+1, "blocks", n-fork)
	s.st.scanned = s.st.scanned[:fork]
	for id, w := range s.st.txs {
		if w.height > forkHeight {
			if w.coinbase {
				delete(s.st.txs, id)
				continue
			}
			w.height, w.branch, w.header = -1, nil, nil
		}
	}
	return nil
}

// scanBlock records the block's transactions that concern the wallet.
func (s *Service) scanBlock(height int64, blk *wire.MsgBlock) error {
	ours := map[wire.OutPoint]bool{}
	for _, w := range s.st.txs {
		for i, o := range w.tx.TxOut {
			if string(o.PkScript) == string(s.key.Script) {
				ours[wire.OutPoint{Hash: w.id, Index: uint32(i)}] = true
			}
		}
	}
	var txids []chainhash.Hash
	type mined struct {
		w     *wtx
		index uint32
	}
	var found []mined
	for i, tx := range blk.Transactions {
		id := tx.TxHash()
		w := s.st.txs[id]
		relevant := w != nil
		for _, o := range tx.TxOut {
			relevant = relevant || string(o.PkScript) == string(s.key.Script)
		}
		for _, in := range tx.TxIn {
			relevant = relevant || ours[in.PreviousOutPoint]
		}
		if !relevant {
			continue
		}
		if w == nil {
			w = &wtx{id: id, tx: tx, coinbase: i == 0, created: time.Now()}
		}
		found = append(found, mined{w, uint32(i)})
	}
	if len(found) > 0 {
		for _, tx := range blk.Transactions {
			txids = append(txids, tx.TxHash())
		}
	}
	var changed []*wtx
	blockHash, header := blk.BlockHash(), bitcoin.HeaderBytes(&blk.Header)
	// A known transaction is read by status under s.mu: its fields change
	// under the lock too.
	s.mu.Lock()
	for _, f := range found {
		w := f.w
		branch, err := bitcoin.MerkleBranch(txids, int(f.index))
		if err != nil {
			s.mu.Unlock()
			return err
		}
		w.height, w.block, w.index, w.header, w.branch = height, blockHash, f.index, header, branch
		w.dropped = "" // mined, whatever was thought of it
		s.st.txs[w.id] = w
		changed = append(changed, w)
		// An unconfirmed transaction of ours that spends the same
		// outputs can never confirm now (a replacement, or its original).
		for _, in := range w.tx.TxIn {
			for _, o := range s.st.txs {
				if o != w && o.ours && o.height < 0 && o.live() && spends(o.tx, in.PreviousOutPoint) {
					o.dropped = "conflicts with " + w.id.String() + ", mined at height " + fmt.Sprint(height)
					changed = append(changed, o)
				}
			}
		}
	}
	s.st.scanned = append(s.st.scanned, scannedBlock{height: height, hash: blk.BlockHash()})
	s.mu.Unlock()
	for _, w := range changed {
		if err := s.db.saveTx(w); err != nil {
			return err
		}
	}
	return s.db.saveScanned(height, blk.BlockHash())
}

func spends(tx *wire.MsgTx, op wire.OutPoint) bool {
	for _, in := range tx.TxIn {
		if in.PreviousOutPoint == op {
			return true
		}
	}
	return false
}

// rebroadcast sends again every live, unconfirmed transaction of ours
// that the node does not hold: one it never got, or lost in a restart or
// a reorg. A refusal drops the transaction; its anchor is then redone.
func (s *Service) rebroadcast(ctx context.Context) error {
	var refused error
	for _, w := range s.sortedTxs() {
		if !w.ours || !w.live() || w.height >= 0 || s.mempool[w.id] {
			continue
		}
		_, err := s.cfg.RPC.Send(ctx, w.tx)
		var rpcErr *bitcoin.RPCError
		switch {
		case err == nil:
			s.accepted(w.id)
		case errors.As(err, &rpcErr) && strings.Contains(strings.ToLower(rpcErr.Message), "already"):
			// Already in the mempool or a block (it got there between the
			// mempool read and now): accepted, not refused.
			s.accepted(w.id)
		case errors.As(err, &rpcErr):
			s.cfg.Log.Error("Bitcoin node refused an anchor transaction", "txid", w.id, "err", err)
			s.mu.Lock()
			w.dropped = "refused by the node: " + rpcErr.Message
			s.mu.Unlock()
			if err := s.db.saveTx(w); err != nil {
				return err
			}
			s.attemptError(w.id, w.dropped)
			if refused == nil {
				refused = fmt.Errorf("anchor transaction %s %s; the blocks it covered wait for the next anchor", w.id, w.dropped)
			}
		default:
			return err
		}
	}
	return refused
}

// sortedTxs returns the wallet's transactions, oldest first.
func (s *Service) sortedTxs() []*wtx {
	s.mu.RLock()
	out := make([]*wtx, 0, len(s.st.txs))
	for _, w := range s.st.txs {
		out = append(out, w)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

func (s *Service) attemptFor(txid chainhash.Hash) *attempt {
	for _, a := range s.st.anchors {
		for _, at := range a.attempts {
			if at.txid == txid {
				return at
			}
		}
	}
	return nil
}

func (s *Service) accepted(txid chainhash.Hash) {
	s.mu.Lock()
	at := s.attemptFor(txid)
	if at != nil && at.broadcast.IsZero() {
		at.broadcast, at.err = time.Now(), ""
	}
	s.mu.Unlock()
	if at != nil {
		if err := s.db.saveAttempt(at); err != nil {
			s.cfg.Log.Error("anchor state", "err", err)
		}
	}
}

func (s *Service) attemptError(txid chainhash.Hash, msg string) {
	s.mu.Lock()
	at := s.attemptFor(txid)
	if at != nil {
		at.err = msg
	}
	s.mu.Unlock()
	if at != nil {
		if err := s.db.saveAttempt(at); err != nil {
			s.cfg.Log.Error("anchor state", "err", err)
		}
	}
}

// feeRate is the node's estimate for confirmation within 3 blocks, capped,
// or the configured rate when the node has none.
func (s *Service) feeRate(ctx context.Context) (float64, error) {
	est, err := s.cfg.RPC.FeeRate(ctx, 3)
	if err != nil {
		return 0, err
	}
	rate := s.cfg.FeeRate
	if est > 0 {
		rate = min(est, s.cfg.MaxFeeRate)
	}
	s.mu.Lock()
	s.rate = rate
	s.mu.Unlock()
	return rate, nil
}

// anchorIfDue anchors the newest block when the interval has passed since
// the last anchor, or at once when every earlier anchor failed to stay
// live, so that no block is left uncovered.
func (s *Service) anchorIfDue(ctx context.Context) error {
	n := s.cfg.Chain.Height()
	if n == 0 {
		return nil
	}
	newest := n - 1
	s.mu.RLock()
	last, lastLive, covered := s.lastLive()
	s.mu.RUnlock()
	if covered >= 0 && uint64(covered) >= newest {
		return nil
	}
	if last != nil {
		wait := s.cfg.Interval
		if !lastLive {
			wait = min(wait, time.Minute) // it failed: try again soon, not at once every round
		}
		if time.Since(last.created) < wait {
			return nil
		}
	}
	hdr, err := s.cfg.Chain.Header(newest)
	if err != nil {
		return fmt.Errorf("read block %d: %w", newest, err)
	}
	rate, err := s.feeRate(ctx)
	if err != nil {
		return err
	}
	s.mu.RLock()
	coins := confirmedOnly(s.st.coins(s.key.Script, int64(s.params.CoinbaseMaturity)))
	s.mu.RUnlock()
	tx, fee, err := build(s.key, hdr.Hash(), coins, rate, 0)
	if err != nil {
		return fmt.Errorf("anchor block %d: %w", newest, err)
	}
	rec := &record{height: newest, hash: hdr.Hash(), created: time.Now()}
	if err := s.db.saveAnchor(rec); err != nil {
		return err
	}
	at := &attempt{txid: tx.TxHash(), anchor: rec.id, fee: fee}
	rec.attempts = []*attempt{at}
	w := &wtx{id: tx.TxHash(), tx: tx, ours: true, created: time.Now(), height: -1}
	// The transaction is saved before it is sent: if the node is down or
	// the process dies, the next round sends it again.
	if err := s.db.saveTx(w); err != nil {
		return err
	}
	if err := s.db.saveAttempt(at); err != nil {
		return err
	}
	s.mu.Lock()
	s.st.txs[w.id] = w
	s.st.anchors = append(s.st.anchors, rec)
	s.mu.Unlock()
	s.cfg.Log.Info("anchoring", "height", newest, "block", fmt.Sprintf("%x", rec.hash[:8]), "txid", w.id, "fee_sat", fee, "sat_per_vb", rate)
	return s.rebroadcast(ctx)
}

// confirmedOnly keeps confirmed coins. Spending only those keeps every
// anchor transaction free of unconfirmed parents, so replacing one by
// fee never evicts another.
func confirmedOnly(cs []coin) []coin {
	out := cs[:0:0]
	for _, c := range cs {
		if c.confirmed {
			out = append(out, c)
		}
	}
	return out
}

// lastLive returns the newest anchor, whether it still has a live
// transaction, and the highest block covered by an anchor with a live
// transaction (-1 for none). Callers hold s.mu.
func (s *Service) lastLive() (last *record, live bool, covered int64) {
	covered = -1
	// Anchored heights never decrease along s.st.anchors: the newest live
	// anchor covers the most.
	for i := len(s.st.anchors) - 1; i >= 0; i-- {
		if s.liveTx(s.st.anchors[i]) != nil {
			covered = int64(s.st.anchors[i].height)
			break
		}
	}
	if n := len(s.st.anchors); n > 0 {
		last = s.st.anchors[n-1]
		live = s.liveTx(last) != nil
	}
	return last, live, covered
}

// liveTx returns the anchor's transaction that still counts: a mined one
// first, else the newest live one. Callers hold s.mu.
func (s *Service) liveTx(a *record) *wtx {
	var live *wtx
	for _, at := range a.attempts {
		w := s.st.txs[at.txid]
		if w == nil || !w.live() {
			continue
		}
		if w.height >= 0 {
			return w
		}
		live = w
	}
	return live
}

// bump replaces by fee the anchor transactions unconfirmed for longer
// than BumpAfter: same inputs, a fee higher by at least the relay minimum
// per byte, and at least the current rate.
func (s *Service) bump(ctx context.Context) error {
	s.mu.RLock()
	var stuck []*record
	for _, a := range s.st.anchors {
		w := s.liveTx(a)
		if w == nil || w.height >= 0 {
			continue
		}
		at := a.attempts[len(a.attempts)-1]
		if at.txid == w.id && !at.broadcast.IsZero() && time.Since(at.broadcast) >= s.cfg.BumpAfter {
			stuck = append(stuck, a)
		}
	}
	s.mu.RUnlock()
	if len(stuck) == 0 {
		return nil
	}
	rate, err := s.feeRate(ctx)
	if err != nil {
		return err
	}
	for _, a := range stuck {
		s.mu.RLock()
		old := s.liveTx(a)
		prev := a.attempts[len(a.attempts)-1]
		var coins []coin
		for _, in := range old.tx.TxIn {
			src := s.st.txs[in.PreviousOutPoint.Hash]
			if src == nil {
				break
			}
			coins = append(coins, coin{op: in.PreviousOutPoint, value: src.tx.TxOut[in.PreviousOutPoint.Index].Value, confirmed: true})
		}
		s.mu.RUnlock()
		if len(coins) != len(old.tx.TxIn) {
			continue // an input the wallet no longer knows: let it be
		}
		// BIP 125: the new fee pays for the new transaction's size at
		// the incremental relay rate (1 sat/vB) on top of the old fee.
		minFee := prev.fee + vsize(len(coins), old.tx.TxOut)
		tx, fee, err := build(s.key, a.hash, coins, math.Max(rate, float64(prev.fee)*1.25/float64(vsize(len(coins), old.tx.TxOut))), minFee)
		if err != nil {
			s.cfg.Log.Warn("cannot replace a stuck anchor transaction", "txid", old.id, "err", err)
			continue
		}
		w := &wtx{id: tx.TxHash(), tx: tx, ours: true, created: time.Now(), height: -1}
		at := &attempt{txid: w.id, anchor: a.id, fee: fee}
		if err := s.db.saveTx(w); err != nil {
			return err
		}
		if err := s.db.saveAttempt(at); err != nil {
			return err
		}
		if _, err := s.cfg.RPC.Send(ctx, tx); err != nil {
			var rpcErr *bitcoin.RPCError
			if errors.As(err, &rpcErr) {
				w.dropped = "replacement refused by the node: " + rpcErr.Message
				at.err = w.dropped
				_ = s.db.saveTx(w)
				_ = s.db.saveAttempt(at)
				s.mu.Lock()
				s.st.txs[w.id] = w
				a.attempts = append(a.attempts, at)
				s.mu.Unlock()
				s.cfg.Log.Warn("replacement refused", "txid", old.id, "err", err)
				continue
			}
			return err
		}
		at.broadcast = time.Now()
		if err := s.db.saveAttempt(at); err != nil {
			return err
		}
		s.mu.Lock()
		old.dropped = "replaced by " + w.id.String()
		s.st.txs[w.id] = w
		a.attempts = append(a.attempts, at)
		s.mu.Unlock()
		if err := s.db.saveTx(old); err != nil {
			return err
		}
		s.cfg.Log.Info("replaced a stuck anchor transaction by fee", "height", a.height, "old", old.id, "new", w.id, "fee_sat", fee)
	}
	return nil
}

// perAnchor estimates what one anchor costs at rate, with one input.
func perAnchor(rate float64, script []byte) int64 {
	outs := []*wire.TxOut{wire.NewTxOut(0, make([]byte, 2+len(chain.Hash{})+6)), wire.NewTxOut(0, script)}
	return int64(math.Ceil(rate * float64(vsize(1, outs))))
}

// checkFunds warns, at most hourly, while the balance lasts fewer than
// LowFundsDays at the anchor interval.
func (s *Service) checkFunds() {
	st := s.Status()
	if !st.LowFunds {
		return
	}
	s.mu.Lock()
	warn := time.Since(s.lowWarn) >= time.Hour
	if warn {
		s.lowWarn = time.Now()
	}
	s.mu.Unlock()
	if warn {
		s.cfg.Log.Warn("anchor wallet is low on funds: fund its address", "address", st.Address,
			"balance_sat", st.BalanceSat, "anchors_left", st.AnchorsLeft, "days_left", fmt.Sprintf("%.1f", st.DaysLeft))
	}
}
