package bitcoin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// TestMerkleBranch checks branches against btcd's own Merkle tree for
// blocks of 1 to 33 transactions, every position.
func TestMerkleBranch(t *testing.T) {
	for n := 1; n <= 33; n++ {
		var txs []*btcutil.Tx
		var ids []chainhash.Hash
		for i := range n {
			tx := wire.NewMsgTx(1)
			tx.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Index: uint32(i)}})
			tx.AddTxOut(wire.NewTxOut(int64(n*100+i), []byte{0x51}))
			txs = append(txs, btcutil.NewTx(tx))
			ids = append(ids, tx.TxHash())
		}
		store := blockchain.BuildMerkleTreeStore(txs, false)
		root := *store[len(store)-1]
		for i := range n {
			branch, err := MerkleBranch(ids, i)
			if err != nil {
				t.Fatal(err)
			}
			if got := BranchRoot(ids[i], uint32(i), branch); got != root {
				t.Fatalf("%d transactions, index %d: root %s, want %s", n, i, got, root)
			}
		}
	}
	if _, err := MerkleBranch(nil, 0); err == nil {
		t.Error("a branch in an empty block: no error")
	}
}

// rpcServer answers JSON-RPC calls with handler's result or error.
func rpcServer(t *testing.T, handler func(method string, params []json.RawMessage) (any, *RPCError)) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req struct {
			Method string            `json:"method"`
			Params []json.RawMessage `json:"params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("request: %v", err)
		}
		res, rerr := handler(req.Method, req.Params)
		_ = json.NewEncoder(w).Encode(map[string]any{"result": res, "error": rerr, "id": 1})
	}))
	t.Cleanup(srv.Close)
	c, err := Dial(strings.Replace(srv.URL, "http://", "http://u:p@", 1), "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"ftp://host:1", "http://", "::"} {
		if _, err := Dial(bad, ""); err == nil {
			t.Errorf("Dial(%q): no error", bad)
		}
	}
	if _, err := Dial("http://127.0.0.1:1", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Dial with a missing credentials file: no error")
	}

	c := rpcServer(t, func(method string, _ []json.RawMessage) (any, *RPCError) {
		switch method {
		case "getblockcount":
			return 7, nil
		case "estimatesmartfee":
			return nil, &RPCError{Code: -32601, Message: "Method not found"}
		case "estimatefee":
			return 0.00002, nil // BTC per kB: 2 sat/vB
		}
		return nil, &RPCError{Code: -8, Message: "Block height out of range"}
	})
	if n, err := c.BlockCount(ctx); err != nil || n != 7 {
		t.Fatalf("BlockCount = %d, %v", n, err)
	}
	var rpcErr *RPCError
	if _, err := c.BlockHash(ctx, 99); !errors.As(err, &rpcErr) || rpcErr.Code != -8 || errors.Is(err, ErrUnreachable) {
		t.Fatalf("an error answer: %v, want an *RPCError", err)
	}
	if rate, err := c.FeeRate(ctx, 3); err != nil || math.Abs(rate-2) > 1e-9 {
		t.Fatalf("FeeRate from btcd's estimatefee = %v, %v; want 2 sat/vB", rate, err)
	}
	if c.URL() == "" || strings.Contains(c.URL(), "u:p@") {
		t.Fatalf("URL() = %q: it must not show the credentials", c.URL())
	}

	// Wrong credentials, from a file in Bitcoin Core's cookie format.
	cookie := filepath.Join(t.TempDir(), ".cookie")
	if err := os.WriteFile(cookie, []byte("u:wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong, err := Dial(c.URL(), cookie)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.BlockCount(ctx); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "user and password") {
		t.Fatalf("wrong credentials: %v", err)
	}
	// Nothing listening.
	down, _ := Dial("http://127.0.0.1:1", "")
	if _, err := down.BlockCount(ctx); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("no node: %v, want ErrUnreachable", err)
	}
}

// TestParseTx takes exactly one transaction serialized without witness
// data: a proof hashes the bytes as given.
func TestParseTx(t *testing.T) {
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Index: 1}, Witness: wire.TxWitness{{1, 2, 3}}})
	tx.AddTxOut(wire.NewTxOut(1000, []byte{0x51}))
	raw := TxBytes(tx)
	if _, err := ParseTx(raw); err != nil {
		t.Fatalf("without witness: %v", err)
	}
	if _, err := ParseTx(append(raw, 0)); err == nil {
		t.Error("a trailing byte: accepted")
	}
	var withWitness bytes.Buffer
	if err := tx.Serialize(&withWitness); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseTx(withWitness.Bytes()); err == nil {
		t.Error("a transaction serialized with its witness: accepted")
	}
}
