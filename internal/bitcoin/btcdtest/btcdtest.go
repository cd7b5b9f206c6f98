// Package btcdtest runs real btcd nodes in regtest for tests: built from
// the Go module proxy (btcd is a tool of this module, see go.mod), started
// on free loopback ports in a temporary directory, and stopped at the end
// of the test.
//
// btcd in regtest starts a new chain every time it starts, has no wallet,
// and mines with `generate` to its --miningaddr; coinbases mature after
// 100 blocks.
package btcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"cissan/internal/bitcoin"
)

// version is btcd's, as go.mod requires it; the binary is cached per
// version.
const version = "v0.24.2"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds btcd once per machine and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "cissan-btcd-"+version)
		binPath = filepath.Join(dir, "btcd")
		if _, err := os.Stat(binPath); err == nil {
			return
		}
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		tmp := fmt.Sprintf("%s.%d", binPath, os.Getpid())
		out, err := exec.Command("go", "build", "-o", tmp, "github.com/btcsuite/btcd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build btcd: %v\n%s", err, out)
			return
		}
		buildErr = os.Rename(tmp, binPath) // atomic: parallel test binaries may race here
	})
	if buildErr != nil {
		t.Fatalf("btcd: %v", buildErr)
	}
	return binPath
}

// Node is a running btcd.
type Node struct {
	RPC     *bitcoin.Client
	RPCURL  string // with credentials
	P2PAddr string
	cmd     *exec.Cmd
	dir     string
	done    chan struct{}
}

// Start runs btcd in regtest, mining to miningAddr, and waits until its
// RPC answers. It is stopped when the test ends.
func Start(t testing.TB, miningAddr string) *Node {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	rpcAddr, p2pAddr := freeAddr(t), freeAddr(t)
	n := &Node{
		RPCURL:  "http://cissan:regtest@" + rpcAddr,
		P2PAddr: p2pAddr,
		dir:     dir,
		done:    make(chan struct{}),
	}
	n.cmd = exec.Command(bin,
		"--regtest", "--datadir="+filepath.Join(dir, "data"), "--logdir="+filepath.Join(dir, "logs"),
		"--rpcuser=cissan", "--rpcpass=regtest", "--rpclisten="+rpcAddr, "--notls",
		"--listen="+p2pAddr, "--miningaddr="+miningAddr, "--debuglevel=warn", "--txindex",
	)
	logf, err := os.Create(filepath.Join(dir, "btcd.out"))
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start btcd: %v", err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.Stop()
		_ = logf.Close()
	})
	if n.RPC, err = bitcoin.Dial(n.RPCURL, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if _, err := n.RPC.BlockCount(ctx); err == nil {
			return n
		}
		select {
		case <-n.done:
			out, _ := os.ReadFile(filepath.Join(dir, "btcd.out"))
			t.Fatalf("btcd exited: %s", out)
		case <-ctx.Done():
			t.Fatalf("btcd RPC on %s did not answer within 60 s", rpcAddr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends the node.
func (n *Node) Stop() {
	if n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
}

// Generate mines n blocks and returns their hashes.
func (n *Node) Generate(t testing.TB, blocks int) []chainhash.Hash {
	t.Helper()
	var ids []string
	if err := n.RPC.Call(context.Background(), "generate", &ids, blocks); err != nil {
		t.Fatalf("generate %d: %v", blocks, err)
	}
	out := make([]chainhash.Hash, len(ids))
	for i, s := range ids {
		h, err := chainhash.NewHashFromStr(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = *h
	}
	return out
}

// Invalidate marks the block with hash h invalid, so the node's best chain
// leaves it: a reorg, as far as clients of the node can tell.
func (n *Node) Invalidate(t testing.TB, h chainhash.Hash) {
	t.Helper()
	if err := n.RPC.Call(context.Background(), "invalidateblock", nil, h.String()); err != nil {
		t.Fatalf("invalidateblock %s: %v", h, err)
	}
}

// Height returns the node's best height.
func (n *Node) Height(t testing.TB) int64 {
	t.Helper()
	h, err := n.RPC.BlockCount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
