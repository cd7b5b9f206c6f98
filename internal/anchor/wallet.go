package anchor

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"cissan/internal/chain"
	"cissan/internal/proof"
)

// wtx is a transaction of the wallet: one that pays its address, or one it
// built. The wallet needs no node-side wallet: it finds these by scanning
// blocks.
type wtx struct {
	id       chainhash.Hash
	tx       *wire.MsgTx
	coinbase bool
	ours     bool
	dropped  string // why it no longer counts: refused, replaced, conflicted
	created  time.Time

	height int64 // Bitcoin height of its block; -1 while unconfirmed
	block  chainhash.Hash
	index  uint32
	branch []chainhash.Hash
	header []byte
}

func (w *wtx) live() bool { return w.dropped == "" }

type scannedBlock struct {
	height int64
	hash   chainhash.Hash
}

// record is one anchor: a cissan block whose hash goes to Bitcoin, and the
// transactions tried for it (a replacement by fee adds one).
type record struct {
	id       int64
	height   uint64
	hash     chain.Hash
	created  time.Time
	attempts []*attempt
}

type attempt struct {
	txid      chainhash.Hash
	anchor    int64
	fee       int64
	broadcast time.Time // zero until the node accepted it
	err       string
}

// state is everything the service knows; the service's loop is its only
// writer.
type state struct {
	scanned []scannedBlock // in height order
	txs     map[chainhash.Hash]*wtx
	anchors []*record // in creation order, so in anchored height order
}

func (s *state) tip() int64 {
	if len(s.scanned) == 0 {
		return -1
	}
	return s.scanned[len(s.scanned)-1].height
}

// coin is an output the wallet can spend.
type coin struct {
	op        wire.OutPoint
	value     int64
	confirmed bool
}

// coins returns the wallet's unspent outputs: outputs paying script of
// live transactions that no live transaction spends. Coinbases count only
// once mature.
func (s *state) coins(script []byte, maturity int64) []coin {
	spent := map[wire.OutPoint]bool{}
	for _, w := range s.txs {
		if w.live() && !w.coinbase {
			for _, in := range w.tx.TxIn {
				spent[in.PreviousOutPoint] = true
			}
		}
	}
	var out []coin
	for _, w := range s.txs {
		if !w.live() {
			continue
		}
		if w.coinbase && (w.height < 0 || s.tip()-w.height+1 < maturity) {
			continue
		}
		for i, o := range w.tx.TxOut {
			op := wire.OutPoint{Hash: w.id, Index: uint32(i)}
			if bytes.Equal(o.PkScript, script) && !spent[op] {
				out = append(out, coin{op: op, value: o.Value, confirmed: w.height >= 0})
			}
		}
	}
	// Largest first, so that few inputs pay; ties in a fixed order.
	sort.Slice(out, func(i, j int) bool {
		if out[i].value != out[j].value {
			return out[i].value > out[j].value
		}
		return bytes.Compare(out[i].op.Hash[:], out[j].op.Hash[:]) < 0 || out[i].op.Hash == out[j].op.Hash && out[i].op.Index < out[j].op.Index
	})
	return out
}

// immature returns the value of coinbases paying script that are not yet
// spendable.
func (s *state) immature(script []byte, maturity int64) int64 {
	var v int64
	for _, w := range s.txs {
		if w.live() && w.coinbase && w.height >= 0 && s.tip()-w.height+1 < maturity {
			for _, o := range w.tx.TxOut {
				if bytes.Equal(o.PkScript, script) {
					v += o.Value
				}
			}
		}
	}
	return v
}

// Transactions stay far below the 4 KiB an OpenTimestamps verifier
// accepts, and below any relay limit.
const maxInputs = 20

// vsize estimates a P2WPKH transaction's virtual size with n inputs and
// the given outputs, counting the largest signature.
func vsize(inputs int, outs []*wire.TxOut) int64 {
	base := 4 + 4 + wire.VarIntSerializeSize(uint64(inputs)) + wire.VarIntSerializeSize(uint64(len(outs))) + inputs*(32+4+1+4)
	for _, o := range outs {
		base += o.SerializeSize()
	}
	witness := 2 + inputs*(1+1+73+1+33)
	return int64(math.Ceil(float64(base*4+witness) / 4))
}

// errNoFunds is wrapped when the wallet cannot pay for an anchor.
var errNoFunds = errors.New("insufficient funds")

// build makes and signs a transaction that anchors hash, paying fee rate
// (satoshis per virtual byte) from coins, the change back to the key. To
// replace an earlier transaction, pass its inputs as coins and a minimum
// fee above its own.
func build(k *Key, hash chain.Hash, coins []coin, rate float64, minFee int64) (*wire.MsgTx, int64, error) {
	data, err := txscript.NullDataScript(proof.AnchorData(hash))
	if err != nil {
		return nil, 0, err
	}
	outs := []*wire.TxOut{wire.NewTxOut(0, data), wire.NewTxOut(0, k.Script)}
	feeFor := func(inputs int) int64 { return max(int64(math.Ceil(rate*float64(vsize(inputs, outs)))), minFee) }
	var in []coin
	var total int64
	for _, c := range coins {
		if len(in) == maxInputs || len(in) > 0 && total >= feeFor(len(in))+dustLimit {
			break
		}
		in = append(in, c)
		total += c.value
	}
	fee := feeFor(len(in))
	if total < fee {
		return nil, 0, fmt.Errorf("%w: %d sat spendable in %d outputs, the anchor needs %d sat at %.2f sat/vB", errNoFunds, total, len(in), fee, rate)
	}
	change := total - fee
	if change < dustLimit {
		outs = outs[:1] // too small to spend later: it goes to the fee
		fee = total
	} else {
		outs[1].Value = change
	}

	tx := wire.NewMsgTx(2)
	fetch := txscript.NewMultiPrevOutFetcher(nil)
	for _, c := range in {
		// A sequence below 0xfffffffe signals that a higher fee may
		// replace this transaction (BIP 125).
		tx.AddTxIn(&wire.TxIn{PreviousOutPoint: c.op, Sequence: wire.MaxTxInSequenceNum - 2})
		fetch.AddPrevOut(c.op, wire.NewTxOut(c.value, k.Script))
	}
	for _, o := range outs {
		tx.AddTxOut(o)
	}
	hashes := txscript.NewTxSigHashes(tx, fetch)
	for i, c := range in {
		w, err := txscript.WitnessSignature(tx, hashes, i, c.value, k.Script, txscript.SigHashAll, k.priv, true)
		if err != nil {
			return nil, 0, fmt.Errorf("sign anchor transaction: %w", err)
		}
		tx.TxIn[i].Witness = w
	}
	return tx, fee, nil
}

// dustLimit is an output value every node relays, whatever its dust
// rule: change below it goes to the fee.
const dustLimit = 546
