package anchor

import (
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"cissan/internal/bitcoin"
	"cissan/internal/chain"
	"cissan/internal/ledger"
	"cissan/internal/proof"
)

// States of a block's anchor.
const (
	Pending   = "pending"   // no live anchor transaction covers it yet
	Broadcast = "broadcast" // one is in the mempool or has fewer confirmations than required
	Confirmed = "confirmed" // one has the required confirmations
)

// BlockStatus is how a block is timestamped on Bitcoin.
type BlockStatus struct {
	State          string     `json:"state"`
	AnchoredHeight *uint64    `json:"anchored_height,omitempty"` // the block whose hash the transaction carries
	TxID           string     `json:"txid,omitempty"`
	BitcoinHeight  int64      `json:"bitcoin_height,omitempty"`
	BitcoinBlock   string     `json:"bitcoin_block,omitempty"`
	BitcoinTime    *time.Time `json:"bitcoin_time,omitempty"`
	Confirmations  int64      `json:"confirmations,omitempty"`
}

// Status is the service's state for GET /v1/status and metrics.
type Status struct {
	Network        string       `json:"network"`
	Address        string       `json:"address"`
	Node           string       `json:"node"`
	Error          string       `json:"error,omitempty"` // the last round's failure, until a round succeeds
	ErrorAt        *time.Time   `json:"error_at,omitempty"`
	BitcoinHeight  int64        `json:"bitcoin_height"`
	BalanceSat     int64        `json:"balance_sat"` // spendable now or once its transaction confirms
	ImmatureSat    int64        `json:"immature_sat"`
	FeeRate        float64      `json:"fee_rate_sat_per_vb"`
	AnchorCostSat  int64        `json:"anchor_cost_sat"`
	AnchorsLeft    int64        `json:"anchors_left"`
	DaysLeft       float64      `json:"days_left"`
	LowFunds       bool         `json:"low_funds"`
	Interval       string       `json:"interval"`
	Confirmations  int64        `json:"confirmations_required"`
	Anchors        int          `json:"anchors"`
	ConfirmedUpTo  *uint64      `json:"confirmed_through_height,omitempty"` // every block up to this one is confirmed on Bitcoin
	LastAnchor     *BlockStatus `json:"last_anchor,omitempty"`
	NextAnchorTime *time.Time   `json:"next_anchor,omitempty"`
}

// Status returns the service's state.
func (s *Service) Status() Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Status{
		Network: s.cfg.Network, Address: s.Address(), Node: s.cfg.RPC.URL(), Error: s.lastErr,
		BitcoinHeight: s.st.tip(), FeeRate: s.rate, Interval: s.cfg.Interval.String(),
		Confirmations: s.cfg.Confirmations, Anchors: len(s.st.anchors),
		ImmatureSat: s.st.immature(s.key.Script, int64(s.params.CoinbaseMaturity)),
	}
	if s.lastErr != "" {
		t := s.errAt.UTC()
		st.ErrorAt = &t
	}
	for _, c := range s.st.coins(s.key.Script, int64(s.params.CoinbaseMaturity)) {
		st.BalanceSat += c.value
	}
	st.AnchorCostSat = perAnchor(s.rate, s.key.Script)
	st.AnchorsLeft = st.BalanceSat / max(st.AnchorCostSat, 1)
	st.DaysLeft = float64(st.AnchorsLeft) * s.cfg.Interval.Hours() / 24
	st.LowFunds = st.DaysLeft < s.cfg.LowFundsDays
	last, live, _ := s.lastLive()
	if last != nil {
		st.LastAnchor = s.status(last)
		next := last.created.Add(s.cfg.Interval)
		if !live {
			next = last.created.Add(min(s.cfg.Interval, time.Minute))
		}
		next = next.UTC()
		st.NextAnchorTime = &next
	}
	// The newest confirmed anchor covers every block up to its own.
	for i := len(s.st.anchors) - 1; i >= 0; i-- {
		if a := s.st.anchors[i]; s.status(a).State == Confirmed {
			h := a.height
			st.ConfirmedUpTo = &h
			break
		}
	}
	return st
}

// status describes one anchor. Callers hold s.mu.
func (s *Service) status(a *record) *BlockStatus {
	h := a.height
	bs := &BlockStatus{State: Pending, AnchoredHeight: &h}
	w := s.liveTx(a)
	if w == nil {
		return bs
	}
	bs.State, bs.TxID = Broadcast, w.id.String()
	if w.height >= 0 {
		bs.BitcoinHeight, bs.BitcoinBlock = w.height, w.block.String()
		bs.Confirmations = s.st.tip() - w.height + 1
		if hdr, err := bitcoin.ParseHeader(w.header); err == nil {
			t := hdr.Timestamp.UTC()
			bs.BitcoinTime = &t
		}
		if bs.Confirmations >= s.cfg.Confirmations {
			bs.State = Confirmed
		}
	}
	return bs
}

// covering returns the anchor that timestamps block h: the lowest
// confirmed one at or above h, else the lowest live one, else nil.
// Callers hold s.mu.
func (s *Service) covering(h uint64) (*record, *BlockStatus) {
	// Anchored heights never decrease along s.st.anchors, and older
	// anchors confirm first: the search stops at the first confirmed one.
	as := s.st.anchors
	var live *record
	var liveStatus *BlockStatus
	for i := sort.Search(len(as), func(i int) bool { return as[i].height >= h }); i < len(as); i++ {
		switch bs := s.status(as[i]); bs.State {
		case Confirmed:
			return as[i], bs
		case Broadcast:
			if live == nil {
				live, liveStatus = as[i], bs
			}
		}
	}
	return live, liveStatus
}

// Block returns how block h is timestamped.
func (s *Service) Block(h uint64) *BlockStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, bs := s.covering(h); bs != nil {
		return bs
	}
	return &BlockStatus{State: Pending}
}

// Proof returns the Bitcoin part of the proof of any entry of block h, or
// nil while no anchor covering it has the required confirmations.
func (s *Service) Proof(h uint64) (*proof.Anchor, error) {
	s.mu.RLock()
	a, bs := s.covering(h)
	var w *wtx
	if a != nil && bs.State == Confirmed {
		w = s.liveTx(a)
	}
	s.mu.RUnlock()
	if w == nil {
		return nil, nil
	}
	anchored, err := s.cfg.Chain.Header(a.height)
	if err != nil {
		return nil, fmt.Errorf("anchor proof: %w", err)
	}
	var path []chain.Hash
	if a.height > h {
		if path, err = s.historyPath(h, a.height); err != nil {
			return nil, fmt.Errorf("anchor proof: %w", err)
		}
	}
	out := &proof.Anchor{
		HistoryPath:      make([]string, len(path)),
		AnchoredHeader:   hex.EncodeToString(anchored.Encode()),
		Tx:               hex.EncodeToString(bitcoin.TxBytes(w.tx)),
		TxID:             w.id.String(),
		TxIndex:          w.index,
		TxPath:           make([]string, len(w.branch)),
		BitcoinHeader:    hex.EncodeToString(w.header),
		BitcoinBlockHash: w.block.String(),
		BitcoinHeight:    w.height,
	}
	for i, p := range path {
		out.HistoryPath[i] = hex.EncodeToString(p[:])
	}
	for i, b := range w.branch {
		out.TxPath[i] = hex.EncodeToString(b[:])
	}
	return out, nil
}

// LedgerChain returns the chain of a ledger.
func LedgerChain(l *ledger.Ledger) Chain { return ledgerChain{l} }

type ledgerChain struct{ l *ledger.Ledger }

func (c ledgerChain) Height() uint64 { return c.l.Height() }

func (c ledgerChain) Header(h uint64) (*chain.Header, error) {
	hdr, _, err := c.l.Store().Header(h)
	return hdr, err
}

// Gauges is where RegisterMetrics puts the service's figures.
type Gauges interface {
	GaugeFunc(name, help string, labels map[string]string, f func() float64)
}

// RegisterMetrics exposes the wallet and anchor figures, read at each
// scrape.
func (s *Service) RegisterMetrics(m Gauges) {
	m.GaugeFunc("cissan_anchor_balance_sats", "Satoshis the anchor wallet can spend, now or once its own transactions confirm.", nil,
		func() float64 { return float64(s.Status().BalanceSat) })
	m.GaugeFunc("cissan_anchor_funds_days_left", "Days of anchoring the wallet's balance pays for at the current fee rate and interval.", nil,
		func() float64 { return s.Status().DaysLeft })
	m.GaugeFunc("cissan_anchor_low_funds", "1 while the anchor wallet's balance lasts fewer days than the warning threshold.", nil,
		func() float64 { return b2f(s.Status().LowFunds) })
	m.GaugeFunc("cissan_anchor_error", "1 while the last anchoring round failed (node unreachable, refused transaction, no funds).", nil,
		func() float64 { return b2f(s.Status().Error != "") })
	m.GaugeFunc("cissan_anchor_bitcoin_height", "Height of the newest Bitcoin block the anchor service has scanned.", nil,
		func() float64 { return float64(s.Status().BitcoinHeight) })
	m.GaugeFunc("cissan_anchor_confirmed_height", "The newest block whose anchor has the required Bitcoin confirmations; -1 for none.", nil,
		func() float64 {
			if h := s.Status().ConfirmedUpTo; h != nil {
				return float64(*h)
			}
			return -1
		})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
