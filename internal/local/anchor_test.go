package local_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"cissan/internal/anchor"
	"cissan/internal/api"
	"cissan/internal/bitcoin"
	"cissan/internal/bitcoin/btcdtest"
	"cissan/internal/chain"
	"cissan/internal/cli"
	"cissan/internal/proof"
)

// anchorDeadline bounds each wait for the anchor service: generous, since
// CI runs the Bitcoin tests beside every other package's.
const anchorDeadline = 90 * time.Second

// anchoredNet starts btcd in regtest mining to a new anchor key, matures
// enough coinbases (and activates segwit), and starts a network that
// anchors to it every second with 2 confirmations.
func anchoredNet(t *testing.T) (*testNet, *btcdtest.Node) {
	t.Helper()
	dir := t.TempDir()
	params, _ := bitcoin.Params("regtest")
	keyFile := filepath.Join(dir, "anchor.key")
	key, _, err := anchor.LoadKey(keyFile, params)
	if err != nil {
		t.Fatal(err)
	}
	node := btcdtest.Start(t, key.Address.String())
	node.Generate(t, 440)
	rpc, err := bitcoin.Dial(node.RPCURL, "")
	if err != nil {
		t.Fatal(err)
	}
	tn := startNetAnchored(t, filepath.Join(dir, "net"), 2, &anchor.Config{
		RPC: rpc, Network: "regtest", KeyFile: keyFile, Interval: time.Second,
		Confirmations: 2, Poll: 100 * time.Millisecond,
	})
	return tn, node
}

// anchorStatus returns GET /v1/status's anchor object.
func (tn *testNet) anchorStatus() anchor.Status {
	tn.t.Helper()
	var st struct {
		Anchor *anchor.Status `json:"anchor"`
	}
	tn.mustGet("/v1/status", &st)
	if st.Anchor == nil {
		tn.t.Fatal("GET /v1/status has no anchor object")
	}
	return *st.Anchor
}

// waitAnchorStatus waits until the anchor status satisfies ok.
func (tn *testNet) waitAnchorStatus(ok func(anchor.Status) bool) anchor.Status {
	tn.t.Helper()
	deadline := time.Now().Add(anchorDeadline)
	for {
		st := tn.anchorStatus()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("anchor status %+v: not as wanted after %v", st, anchorDeadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitBlockAnchor waits until block h's anchor state is want, mining a
// Bitcoin block now and then so that broadcast anchors confirm.
func (tn *testNet) waitBlockAnchor(node *btcdtest.Node, h uint64, want string, mine bool) api.BlockJSON {
	tn.t.Helper()
	deadline := time.Now().Add(anchorDeadline)
	for {
		b := tn.block(h)
		if b.Anchor != nil && b.Anchor.State == want {
			return b
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("block %d anchor %+v, want %s; anchor status %+v", h, b.Anchor, want, tn.anchorStatus())
		}
		if mine && b.Anchor != nil && b.Anchor.State == anchor.Broadcast {
			node.Generate(tn.t, 1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (tn *testNet) rawGet(path string) ([]byte, int) {
	tn.t.Helper()
	req, _ := http.NewRequestWithContext(tn.t.Context(), http.MethodGet, tn.APIURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tn.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tn.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b, resp.StatusCode
}

// checkAnchoredProof fetches uid's proof and checks its Bitcoin part
// against node: with `cissan verify proof --bitcoin-rpc`, with the Go
// verifier, and as an .ots file with the reference OpenTimestamps library.
// It returns the Bitcoin block the proof names.
func (tn *testNet) checkAnchoredProof(node *btcdtest.Node, uid string) chainhash.Hash {
	tn.t.Helper()
	t := tn.t
	body, code := tn.rawGet("/v1/events/" + uid + "/proof")
	if code != http.StatusOK {
		t.Fatalf("proof: %d %s", code, body)
	}
	b, err := proof.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != 2 {
		t.Fatalf("an anchored proof has version %d, want 2", b.Version)
	}
	net, err := chain.LoadNetwork(filepath.Join(tn.dir, "network.json"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := proof.Verify(b, net)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Anchor == nil || res.Anchor.HeaderChecked {
		t.Fatalf("anchor result %+v: want an anchor not yet checked against the chain", res.Anchor)
	}
	at, err := node.RPC.BlockHash(t.Context(), res.Anchor.BitcoinHeight)
	if err != nil {
		t.Fatal(err)
	}
	if at != res.Anchor.BitcoinBlockHash {
		t.Fatalf("proof names Bitcoin block %s at %d, the node has %s", res.Anchor.BitcoinBlockHash, res.Anchor.BitcoinHeight, at)
	}

	// The command line, against the node.
	path := filepath.Join(t.TempDir(), "proof.json")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := tn.cli("verify", "proof", "--network", filepath.Join(tn.dir, "network.json"), "--bitcoin-rpc", node.RPCURL, path)
	if err != nil || !strings.Contains(out, "checked against the Bitcoin chain") {
		t.Fatalf("verify proof --bitcoin-rpc: %v\n%s", err, out)
	}
	// A header other than the proof's is refused.
	other, err := node.RPC.BlockHash(t.Context(), res.Anchor.BitcoinHeight-1)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := node.RPC.Header(t.Context(), other)
	if err != nil {
		t.Fatal(err)
	}
	out, err = tn.cli("verify", "proof", "--network", filepath.Join(tn.dir, "network.json"),
		"--bitcoin-header", fmt.Sprintf("%x", bitcoin.HeaderBytes(hdr)), path)
	if err == nil || !strings.Contains(out+err.Error(), "bitcoin chain") {
		t.Fatalf("verify proof with another block's header: %v\n%s", err, out)
	}

	// One changed byte in the transaction or the Bitcoin header fails.
	var a proof.Anchor
	if err := json.Unmarshal(b.Anchor, &a); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*proof.Anchor){
		"tx":             func(a *proof.Anchor) { a.Tx = flipHex(t, a.Tx, len(a.Tx)/2) },
		"bitcoin header": func(a *proof.Anchor) { a.BitcoinHeader = flipHex(t, a.BitcoinHeader, 80) },
		"tx path":        func(a *proof.Anchor) { a.TxPath = append(a.TxPath, a.TxPath...) },
		"history path":   func(a *proof.Anchor) { a.HistoryPath = append(a.HistoryPath, strings.Repeat("00", 32)) },
		"anchored":       func(a *proof.Anchor) { a.AnchoredHeader = flipHex(t, a.AnchoredHeader, 120) },
	} {
		c := a
		c.TxPath = append([]string(nil), a.TxPath...)
		c.HistoryPath = append([]string(nil), a.HistoryPath...)
		mod(&c)
		bb := *b
		bb.Anchor, _ = json.Marshal(c)
		if _, err := proof.Verify(&bb, net); err == nil {
			t.Errorf("anchor with %s changed: accepted", name)
		}
	}

	// The OpenTimestamps export, checked by the reference library.
	otsData, code := tn.rawGet("/v1/events/" + uid + "/proof?format=ots")
	if code != http.StatusOK {
		t.Fatalf("proof?format=ots: %d %s", code, otsData)
	}
	entry, code := tn.rawGet("/v1/events/" + uid + "/proof?format=entry")
	if code != http.StatusOK {
		t.Fatalf("proof?format=entry: %d %s", code, entry)
	}
	bh, err := node.RPC.Header(t.Context(), at)
	if err != nil {
		t.Fatal(err)
	}
	headerHex := fmt.Sprintf("%x", bitcoin.HeaderBytes(bh))
	height := fmt.Sprint(res.Anchor.BitcoinHeight)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if out, err := checkOTS(t, write("e", entry), write("e.ots", otsData), headerHex, height); err != nil {
		t.Fatalf("reference OpenTimestamps library refuses the export: %v\n%s", err, out)
	}
	for _, i := range []int{len(otsData) / 3, len(otsData) / 2, len(otsData) - 3} {
		bad := append([]byte(nil), otsData...)
		bad[i] ^= 0x01
		if out, err := checkOTS(t, write("e", entry), write("e.ots", bad), headerHex, height); err == nil {
			t.Errorf(".ots with byte %d changed: accepted\n%s", i, out)
		}
	}
	badEntry := append([]byte(nil), entry...)
	badEntry[len(badEntry)/2] ^= 0x01
	if out, err := checkOTS(t, write("e", badEntry), write("e.ots", otsData), headerHex, height); err == nil {
		t.Errorf("changed entry bytes: accepted\n%s", out)
	}
	// `cissan proof --ots` writes the same file, and the entry beside it.
	outPath := filepath.Join(dir, "cli.entry.ots")
	if out, err := tn.cli("proof", "--api", tn.APIURL, "--token-file", filepath.Join(tn.dir, "admin.token"), "--ots", "-o", outPath, uid); err != nil {
		t.Fatalf("cissan proof --ots: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(outPath); string(got) != string(otsData) {
		t.Error("cissan proof --ots wrote another file than the API's")
	}
	if got, _ := os.ReadFile(strings.TrimSuffix(outPath, ".ots")); string(got) != string(entry) {
		t.Error("cissan proof --ots wrote other entry bytes than the API's")
	}
	return at
}

// checkOTS runs the reference library on an export.
func checkOTS(t *testing.T, file, otsFile, headerHex, height string) (string, error) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import opentimestamps, bitcoin").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-opentimestamps is missing (.ci/run installs it): %v", err)
		}
		t.Skip("python3-opentimestamps not installed (apt-get install python3-opentimestamps)")
	}
	out, err := exec.Command(py, "../../testdata/check_ots.py", file, otsFile, headerHex, height).CombinedOutput()
	return string(out), err
}

func flipHex(t *testing.T, s string, i int) string {
	t.Helper()
	b := []byte(s)
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}

// TestBitcoinAnchoring runs the whole way on a real btcd in regtest:
// events are logged, the master anchors the newest block, the anchor
// confirms, and every event's proof reaches a Bitcoin block header, as
// JSON (checked by `cissan verify proof` against the node) and as an .ots
// file (checked by the reference OpenTimestamps library). Then a Bitcoin
// reorg removes the anchoring block: the service notices, the anchor
// confirms again in another block, and the proofs follow it.
func TestBitcoinAnchoring(t *testing.T) {
	tn, node := anchoredNet(t)
	tok := tn.register("dev-a", "acme/plant")
	d := tn.dial(0, "dev-a", "acme/plant", tok)
	var uids []string
	for i := range 3 {
		uid := fmt.Sprintf("anchored-%d", i)
		publishOK(t, d, seedEvent(uid, "dev-a", "acme/plant", 20+float64(i)))
		uids = append(uids, uid)
	}
	first := tn.waitFinal(uids[0])
	last := tn.waitFinal(uids[len(uids)-1])

	st := tn.waitAnchorStatus(func(st anchor.Status) bool { return st.BalanceSat > 0 })
	if st.Address == "" || st.Network != "regtest" {
		t.Fatalf("anchor status %+v: want the wallet's network and address", st)
	}
	// Two events in different blocks show both an anchor of their own
	// block and one of a later block (through the history tree).
	b := tn.waitBlockAnchor(node, *first.Height, anchor.Confirmed, true)
	if b.Anchor.TxID == "" || b.Anchor.BitcoinHeight <= 440 || b.Anchor.BitcoinTime == nil || b.Anchor.Confirmations < 2 {
		t.Fatalf("confirmed anchor %+v lacks its transaction, height, time or confirmations", b.Anchor)
	}
	tn.waitBlockAnchor(node, *last.Height, anchor.Confirmed, true)
	var blocks []chainhash.Hash
	for _, uid := range uids {
		blocks = append(blocks, tn.checkAnchoredProof(node, uid))
	}
	st = tn.anchorStatus()
	if st.ConfirmedUpTo == nil || *st.ConfirmedUpTo < *last.Height || st.LastAnchor == nil || st.NextAnchorTime == nil {
		t.Fatalf("anchor status %+v: want confirmed through height %d, the last and the next anchor", st, *last.Height)
	}

	// Reorg: the Bitcoin block holding the first event's anchor leaves
	// the best chain. The anchor goes back to broadcast, then confirms
	// in another block, and the proof names that one.
	node.Invalidate(t, blocks[0])
	deadline := time.Now().Add(anchorDeadline)
	for tn.block(*first.Height).Anchor.BitcoinBlock == blocks[0].String() {
		if time.Now().After(deadline) {
			t.Fatalf("the anchor service did not notice the reorg within %v", anchorDeadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tn.waitBlockAnchor(node, *first.Height, anchor.Confirmed, true)
	again := tn.checkAnchoredProof(node, uids[0])
	if again == blocks[0] {
		t.Fatalf("after the reorg the proof still names Bitcoin block %s", again)
	}
}

// cli runs a cissan command and returns what it printed.
func (tn *testNet) cli(args ...string) (string, error) {
	tn.t.Helper()
	var stdout, stderr bytes.Buffer
	err := cli.Run(tn.t.Context(), args, &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}
