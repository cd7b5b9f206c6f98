package btcdtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
)

// Faucet is a miner's key that pays other addresses from its matured
// coinbases, one coinbase per payment.
type Faucet struct {
	node   *Node
	key    *btcec.PrivateKey
	script []byte
	next   int64 // height of the next coinbase to spend
	Addr   btcutil.Address
}

// NewFaucet returns a key to mine to; start the node with its address,
// then call Attach.
func NewFaucet(t testing.TB) *Faucet {
	t.Helper()
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	addr, err := btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(key.PubKey().SerializeCompressed()), &chaincfg.RegressionNetParams)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := txscript.PayToAddrScript(addr)
	return &Faucet{key: key, script: script, Addr: addr, next: 1}
}

// StartWithFaucet starts a node mining to a new faucet and mines 440
// blocks: segwit is active and the first coinbases are spendable.
func StartWithFaucet(t testing.TB) (*Node, *Faucet) {
	t.Helper()
	f := NewFaucet(t)
	f.node = Start(t, f.Addr.String())
	f.node.Generate(t, 440)
	return f.node, f
}

// Pay sends sat to addr from the next mature coinbase, the rest back to
// the faucet less a fee, and returns the transaction's id. It is in the
// mempool: mine a block to confirm it.
func (f *Faucet) Pay(t testing.TB, addr btcutil.Address, sat int64) chainhash.Hash {
	t.Helper()
	ctx := context.Background()
	hash, err := f.node.RPC.BlockHash(ctx, f.next)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := f.node.RPC.Block(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	f.next++
	cb := blk.Transactions[0]
	value := cb.TxOut[0].Value
	to, err := txscript.PayToAddrScript(addr)
	if err != nil {
		t.Fatal(err)
	}
	tx := wire.NewMsgTx(2)
	op := wire.OutPoint{Hash: cb.TxHash(), Index: 0}
	tx.AddTxIn(&wire.TxIn{PreviousOutPoint: op, Sequence: wire.MaxTxInSequenceNum})
	tx.AddTxOut(wire.NewTxOut(sat, to))
	tx.AddTxOut(wire.NewTxOut(value-sat-10_000, f.script))
	fetch := txscript.NewCannedPrevOutputFetcher(f.script, value)
	w, err := txscript.WitnessSignature(tx, txscript.NewTxSigHashes(tx, fetch), 0, value, f.script, txscript.SigHashAll, f.key, true)
	if err != nil {
		t.Fatal(err)
	}
	tx.TxIn[0].Witness = w
	id, err := f.node.RPC.Send(ctx, tx)
	if err != nil {
		t.Fatalf("faucet payment: %v", err)
	}
	return id
}

// DoubleSpend sends a transaction that spends every input of the
// transaction txid (in the mempool or a block) to a new address of the
// faucet, signed with the P2WPKH key in wif, at a fee high enough to
// replace it. It is what someone else holding the same key could do.
func (f *Faucet) DoubleSpend(t testing.TB, wif string, txid chainhash.Hash) chainhash.Hash {
	t.Helper()
	ctx := context.Background()
	w, err := btcutil.DecodeWIF(wif)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(w.PrivKey.PubKey().SerializeCompressed()), &chaincfg.RegressionNetParams)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := txscript.PayToAddrScript(addr)
	orig := f.rawTx(t, txid)
	tx := wire.NewMsgTx(2)
	fetch := txscript.NewMultiPrevOutFetcher(nil)
	var total int64
	for _, in := range orig.TxIn {
		prev := f.rawTx(t, in.PreviousOutPoint.Hash).TxOut[in.PreviousOutPoint.Index]
		total += prev.Value
		fetch.AddPrevOut(in.PreviousOutPoint, prev)
		tx.AddTxIn(&wire.TxIn{PreviousOutPoint: in.PreviousOutPoint, Sequence: wire.MaxTxInSequenceNum})
	}
	tx.AddTxOut(wire.NewTxOut(total-100_000, f.script))
	hashes := txscript.NewTxSigHashes(tx, fetch)
	for i, in := range tx.TxIn {
		prev := fetch.FetchPrevOutput(in.PreviousOutPoint)
		wit, err := txscript.WitnessSignature(tx, hashes, i, prev.Value, script, txscript.SigHashAll, w.PrivKey, true)
		if err != nil {
			t.Fatal(err)
		}
		tx.TxIn[i].Witness = wit
	}
	id, err := f.node.RPC.Send(ctx, tx)
	if err != nil {
		t.Fatalf("double spend of %s: %v", txid, err)
	}
	return id
}

// rawTx fetches a transaction by id (the node runs with --txindex).
func (f *Faucet) rawTx(t testing.TB, txid chainhash.Hash) *wire.MsgTx {
	t.Helper()
	var s string
	if err := f.node.RPC.Call(context.Background(), "getrawtransaction", &s, txid.String(), 0); err != nil {
		t.Fatalf("getrawtransaction %s: %v", txid, err)
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	var tx wire.MsgTx
	if err := tx.Deserialize(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	return &tx
}
