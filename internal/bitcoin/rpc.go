// Package bitcoin talks to a Bitcoin node (Bitcoin Core or btcd) over
// JSON-RPC, and holds the few pieces of Bitcoin's own formats a proof
// needs: the block Merkle tree and header checks.
//
// Only calls that both implementations answer the same way are used, so
// the node needs no wallet: blocks are read raw (getblock with verbosity
// 0) and parsed here, and transactions are sent already signed.
package bitcoin

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// Client is a JSON-RPC client of one node.
type Client struct {
	url        string // without credentials
	user, pass string
	http       *http.Client
	id         atomic.Uint64
}

// Dial returns a client for rawURL (http://user:pass@host:port). When
// authFile is not empty, the credentials are read from it instead, as
// "user:password" on one line (the format of Bitcoin Core's .cookie).
// Dial does not connect: the node may be down now and up later.
func Dial(rawURL, authFile string) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bitcoin rpc url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("bitcoin rpc url %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("bitcoin rpc url %q: no host", u.Redacted())
	}
	c := &Client{http: &http.Client{Timeout: 30 * time.Second}}
	if u.User != nil {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		u.User = nil
	}
	if authFile != "" {
		b, err := os.ReadFile(authFile)
		if err != nil {
			return nil, fmt.Errorf("bitcoin rpc credentials: %w", err)
		}
		user, pass, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
		if !ok {
			return nil, fmt.Errorf("bitcoin rpc credentials %s: want user:password", authFile)
		}
		c.user, c.pass = user, pass
	}
	c.url = u.String()
	return c, nil
}

// URL returns the node's address, without credentials.
func (c *Client) URL() string { return c.url }

// RPCError is an error the node answered with.
type RPCError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("bitcoin node: %s (code %d)", e.Message, e.Code)
}

// ErrUnreachable wraps every failure to get an answer from the node, as
// opposed to an answer that is an error (*RPCError).
var ErrUnreachable = errors.New("bitcoin node unreachable")

// Call invokes method with params and decodes the result into out (if
// not nil).
func (c *Client) Call(ctx context.Context, method string, out any, params ...any) error {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": c.id.Add(1), "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.user != "" || c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", method, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: %w: %w", method, ErrUnreachable, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("%s: %w: HTTP %d (check the RPC user and password)", method, ErrUnreachable, resp.StatusCode)
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *RPCError       `json:"error"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("%s: %w: HTTP %d, not a JSON-RPC answer: %.200q", method, ErrUnreachable, resp.StatusCode, raw)
	}
	if r.Error != nil {
		return fmt.Errorf("%s: %w", method, r.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, out); err != nil {
		return fmt.Errorf("%s: decode result: %w", method, err)
	}
	return nil
}

// Chain returns the node's network: "mainnet", "testnet", "signet" or
// "regtest", whichever name the node uses for it.
func (c *Client) Chain(ctx context.Context) (string, error) {
	var info struct {
		Chain string `json:"chain"`
	}
	if err := c.Call(ctx, "getblockchaininfo", &info); err != nil {
		return "", err
	}
	switch info.Chain {
	case "main", "mainnet":
		return "mainnet", nil
	case "test", "testnet", "testnet3", "testnet4":
		return "testnet", nil
	}
	return info.Chain, nil
}

// BlockCount returns the height of the node's best block.
func (c *Client) BlockCount(ctx context.Context) (int64, error) {
	var n int64
	err := c.Call(ctx, "getblockcount", &n)
	return n, err
}

// BlockHash returns the hash of the best chain's block at height.
func (c *Client) BlockHash(ctx context.Context, height int64) (chainhash.Hash, error) {
	var s string
	if err := c.Call(ctx, "getblockhash", &s, height); err != nil {
		return chainhash.Hash{}, err
	}
	h, err := chainhash.NewHashFromStr(s)
	if err != nil {
		return chainhash.Hash{}, fmt.Errorf("getblockhash: %w", err)
	}
	return *h, nil
}

// Block returns the block with hash h, parsed from its raw bytes.
func (c *Client) Block(ctx context.Context, h chainhash.Hash) (*wire.MsgBlock, error) {
	var s string
	if err := c.Call(ctx, "getblock", &s, h.String(), 0); err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("getblock %s: %w", h, err)
	}
	var b wire.MsgBlock
	if err := b.Deserialize(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("getblock %s: %w", h, err)
	}
	if got := b.BlockHash(); got != h {
		return nil, fmt.Errorf("getblock %s: the node sent block %s", h, got)
	}
	return &b, nil
}

// Header returns the 80-byte header of the block with hash h.
func (c *Client) Header(ctx context.Context, h chainhash.Hash) (*wire.BlockHeader, error) {
	var s string
	if err := c.Call(ctx, "getblockheader", &s, h.String(), false); err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("getblockheader %s: %w", h, err)
	}
	var hdr wire.BlockHeader
	if err := hdr.Deserialize(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("getblockheader %s: %w", h, err)
	}
	return &hdr, nil
}

// Send broadcasts a signed transaction and returns its id.
func (c *Client) Send(ctx context.Context, tx *wire.MsgTx) (chainhash.Hash, error) {
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		return chainhash.Hash{}, fmt.Errorf("sendrawtransaction: %w", err)
	}
	var s string
	if err := c.Call(ctx, "sendrawtransaction", &s, hex.EncodeToString(buf.Bytes())); err != nil {
		return chainhash.Hash{}, err
	}
	return tx.TxHash(), nil
}

// Mempool returns the ids of the transactions in the node's mempool.
func (c *Client) Mempool(ctx context.Context) (map[chainhash.Hash]bool, error) {
	var ids []string
	if err := c.Call(ctx, "getrawmempool", &ids, false); err != nil {
		return nil, err
	}
	out := make(map[chainhash.Hash]bool, len(ids))
	for _, s := range ids {
		h, err := chainhash.NewHashFromStr(s)
		if err != nil {
			return nil, fmt.Errorf("getrawmempool: %w", err)
		}
		out[*h] = true
	}
	return out, nil
}

// FeeRate returns the node's estimate, in satoshis per virtual byte, for a
// confirmation within target blocks, or 0 when the node has none (a
// regtest node, a node just started). Bitcoin Core answers
// estimatesmartfee; btcd answers estimatefee.
func (c *Client) FeeRate(ctx context.Context, target int) (float64, error) {
	var smart struct {
		FeeRate float64 `json:"feerate"` // BTC per kvB
	}
	err := c.Call(ctx, "estimatesmartfee", &smart, target)
	var rpcErr *RPCError
	if errors.As(err, &rpcErr) {
		var btcPerKB float64
		if err := c.Call(ctx, "estimatefee", &btcPerKB, target); err != nil {
			if errors.As(err, &rpcErr) {
				return 0, nil
			}
			return 0, err
		}
		smart.FeeRate = btcPerKB
	} else if err != nil {
		return 0, err
	}
	if smart.FeeRate <= 0 {
		return 0, nil
	}
	return smart.FeeRate * 1e8 / 1000, nil
}
