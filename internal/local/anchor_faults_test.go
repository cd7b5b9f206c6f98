package local_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"cissan/internal/anchor"
	"cissan/internal/bitcoin"
	"cissan/internal/bitcoin/btcdtest"
)

// link is a TCP forwarder to a Bitcoin node that the test can cut and
// restore, as a network partition would: the node itself keeps running
// (btcd in regtest would start a new chain if restarted).
type link struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newLink(t *testing.T, target string) *link {
	l := &link{t: t, target: target}
	l.up()
	l.addr = l.ln.Addr().String()
	t.Cleanup(l.down)
	return l
}

func (l *link) up() {
	addr := l.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		l.t.Fatalf("link: %v", err)
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", l.target)
			if err != nil {
				c.Close()
				continue
			}
			l.mu.Lock()
			l.conns = append(l.conns, c, up)
			l.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

func (l *link) down() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// startAnchoredAt starts a network in dir anchoring through rpcURL with a
// key in keyFile, every second, 1 confirmation, polling fast; mod
// adjusts the configuration.
func startAnchoredAt(t *testing.T, dir, rpcURL, keyFile string, mod func(*anchor.Config)) *testNet {
	t.Helper()
	rpc, err := bitcoin.Dial(rpcURL, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &anchor.Config{
		RPC: rpc, Network: "regtest", KeyFile: keyFile, Interval: time.Second,
		Confirmations: 1, Poll: 100 * time.Millisecond, RescanFrom: 400,
	}
	if mod != nil {
		mod(cfg)
	}
	return startNetAnchored(t, dir, 1, cfg)
}

// logEvent publishes one event and returns its block height once final.
func (tn *testNet) logEvent(uid string) uint64 {
	tn.t.Helper()
	tok := tn.register("dev-"+uid, "acme/plant")
	d := tn.dial(0, "dev-"+uid, "acme/plant", tok)
	publishOK(tn.t, d, seedEvent(uid, "dev-"+uid, "acme/plant", 21))
	return *tn.waitFinal(uid).Height
}

// TestAnchoringRecovers walks the anchor service through what goes wrong
// on a real deployment, each time checking that the status says so, that
// no block is left uncovered, and that anchoring resumes once the cause
// is gone: no funds, then low funds, a transaction stuck unconfirmed
// (replaced by fee), and the node unreachable.
func TestAnchoringRecovers(t *testing.T) {
	node, faucet := btcdtest.StartWithFaucet(t)
	lk := newLink(t, strings.TrimPrefix(node.RPCURL, "http://cissan:regtest@"))
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "anchor.key")
	tn := startAnchoredAt(t, filepath.Join(dir, "net"), "http://cissan:regtest@"+lk.addr, keyFile, func(c *anchor.Config) {
		c.BumpAfter = 1500 * time.Millisecond
	})
	h0 := tn.logEvent("first")

	// No funds: said in the status, and the block stays pending.
	st := tn.waitAnchorStatus(func(st anchor.Status) bool { return strings.Contains(st.Error, "insufficient funds") })
	if !st.LowFunds || st.BalanceSat != 0 || st.Address == "" {
		t.Fatalf("status without funds %+v: want low_funds, balance 0 and the address to fund", st)
	}
	if b := tn.block(h0); b.Anchor == nil || b.Anchor.State != anchor.Pending {
		t.Fatalf("block %d anchor %+v, want pending", h0, b.Anchor)
	}
	var metrics string
	if body, _ := tn.rawGet("/metrics"); !strings.Contains(string(body), "cissan_anchor_low_funds 1") || !strings.Contains(string(body), "cissan_anchor_error 1") {
		metrics = string(body)
		t.Fatalf("metrics do not report low funds and the error:\n%s", metrics)
	}

	// Funded, with little: the anchor goes out; the status still warns.
	addr := st.Address
	payTo, err := btcutilDecode(addr)
	if err != nil {
		t.Fatal(err)
	}
	faucet.Pay(t, payTo, 200_000)
	node.Generate(t, 1)
	b := tn.waitBlockAnchor(node, h0, anchor.Broadcast, false)
	first := b.Anchor.TxID
	st = tn.waitAnchorStatus(func(st anchor.Status) bool { return st.Error == "" })
	if !st.LowFunds || st.BalanceSat <= 0 || st.BalanceSat >= 200_000 {
		t.Fatalf("status with 200000 sat %+v: want a balance below it and low_funds at one anchor a second", st)
	}

	// Stuck: nothing is mined for longer than BumpAfter, so the service
	// replaces the transaction by a higher fee; the node keeps only the
	// replacement, which then confirms.
	deadline := time.Now().Add(anchorDeadline)
	for tn.block(h0).Anchor.TxID == first {
		if time.Now().After(deadline) {
			t.Fatalf("the stuck anchor transaction was not replaced within %v", anchorDeadline)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mp, err := node.RPC.Mempool(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	replacement := tn.block(h0).Anchor.TxID
	if mp[mustTxID(t, first)] || !mp[mustTxID(t, replacement)] {
		t.Fatalf("mempool %v: want the replacement %s and not the original %s", mp, replacement, first)
	}
	tn.waitBlockAnchor(node, h0, anchor.Confirmed, true)

	// Unreachable: the status says so, new blocks wait; once the node is
	// back they are anchored and every block is covered.
	lk.down()
	st = tn.waitAnchorStatus(func(st anchor.Status) bool { return strings.Contains(st.Error, "unreachable") })
	h1 := tn.logEvent("while-down")
	time.Sleep(1500 * time.Millisecond) // longer than the interval: an anchor is due
	if b := tn.block(h1); b.Anchor.State != anchor.Pending {
		t.Fatalf("block %d anchored while the node was unreachable: %+v", h1, b.Anchor)
	}
	lk.up()
	tn.waitBlockAnchor(node, h1, anchor.Confirmed, true)
	st = tn.waitAnchorStatus(func(st anchor.Status) bool { return st.Error == "" })
	if st.ConfirmedUpTo == nil || *st.ConfirmedUpTo < h1 {
		t.Fatalf("status %+v: want every block through %d confirmed", st, h1)
	}
	tn.checkAnchoredProof(node, "while-down")
}

// TestAnchoringRefusedTransaction: a fee rate below the node's relay
// minimum makes the node refuse the anchor transaction. The status says
// why, the block stays pending (its anchor is not lost, only not made),
// and after a restart with a fee rate the node accepts, the block is
// anchored.
func TestAnchoringRefusedTransaction(t *testing.T) {
	node, faucet := btcdtest.StartWithFaucet(t)
	dir := t.TempDir()
	keyFile := fundedKey(t, node, faucet, dir, 1_000_000)
	netDir := filepath.Join(dir, "net")
	tn := startAnchoredAt(t, netDir, node.RPCURL, keyFile, func(c *anchor.Config) { c.FeeRate, c.MaxFeeRate = 0.2, 0.2 })
	h := tn.logEvent("refused")
	st := tn.waitAnchorStatus(func(st anchor.Status) bool { return strings.Contains(st.Error, "refused") })
	if b := tn.block(h); b.Anchor.State != anchor.Pending {
		t.Fatalf("block %d anchor %+v after a refusal, want pending", h, b.Anchor)
	}
	if st.BalanceSat != 1_000_000 {
		t.Fatalf("balance %d after a refused transaction, want the whole 1000000 back", st.BalanceSat)
	}
	if err := tn.Close(); err != nil {
		t.Fatal(err)
	}

	tn = startAnchoredAt(t, netDir, node.RPCURL, keyFile, nil)
	tn.waitBlockAnchor(node, h, anchor.Confirmed, true)
	tn.checkAnchoredProof(node, "refused")
}

// fundedKey creates an anchor key in dir and pays it one confirmed output
// per amount; it returns the key file.
func fundedKey(t *testing.T, node *btcdtest.Node, faucet *btcdtest.Faucet, dir string, amounts ...int64) string {
	t.Helper()
	keyFile := filepath.Join(dir, "anchor.key")
	params, _ := bitcoin.Params("regtest")
	key, _, err := anchor.LoadKey(keyFile, params)
	if err != nil {
		t.Fatal(err)
	}
	for _, sat := range amounts {
		faucet.Pay(t, key.Address, sat)
	}
	node.Generate(t, 1)
	return keyFile
}

func btcutilDecode(addr string) (btcutil.Address, error) {
	params, _ := bitcoin.Params("regtest")
	return btcutil.DecodeAddress(addr, params)
}

func mustTxID(t *testing.T, s string) chainhash.Hash {
	t.Helper()
	h, err := chainhash.NewHashFromStr(s)
	if err != nil {
		t.Fatal(err)
	}
	return *h
}

// TestBitcoinReorgDropsAnchor: a reorg takes the anchor transaction's
// block away, and in the new branch someone holding the same key spends
// its input elsewhere, so the transaction can never confirm. The service
// sees the conflict, anchors the blocks again with another transaction,
// and the proofs name it.
func TestBitcoinReorgDropsAnchor(t *testing.T) {
	node, faucet := btcdtest.StartWithFaucet(t)
	dir := t.TempDir()
	keyFile := fundedKey(t, node, faucet, dir, 1_000_000, 1_000_000)
	tn := startAnchoredAt(t, filepath.Join(dir, "net"), node.RPCURL, keyFile, nil)
	h := tn.logEvent("reorged")
	b := tn.waitBlockAnchor(node, h, anchor.Confirmed, true)
	first, block := mustTxID(t, b.Anchor.TxID), mustTxID(t, b.Anchor.BitcoinBlock)

	node.Invalidate(t, block)
	tn.waitBlockAnchor(node, h, anchor.Broadcast, false)
	wif, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	spend := faucet.DoubleSpend(t, strings.TrimSpace(string(wif)), first)
	node.Generate(t, 1)

	deadline := time.Now().Add(anchorDeadline)
	for {
		b = tn.block(h)
		if b.Anchor.State == anchor.Confirmed && b.Anchor.TxID != first.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("block %d anchor %+v: no new anchor after %s double-spent %s", h, b.Anchor, spend, first)
		}
		if b.Anchor.State == anchor.Broadcast {
			node.Generate(t, 1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tn.checkAnchoredProof(node, "reorged")
}
