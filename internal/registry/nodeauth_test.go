package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cissan/internal/chain"
)

// nodeNet is a registry serving NewServer, with a network.json of a master
// and two hubs.
type nodeNet struct {
	reg      *Registry
	url      string
	operator *Client
	netPath  string
	net      chain.Network
	keys     map[string]ed25519.PrivateKey
}

func newNodeNet(t *testing.T) *nodeNet {
	t.Helper()
	reg, _ := openTest(t)
	nn := &nodeNet{reg: reg, keys: map[string]ed25519.PrivateKey{}, netPath: filepath.Join(t.TempDir(), "network.json")}
	copy(nn.net.ID[:], "0123456789abcdef")
	nn.net.Quorum = 1
	for _, id := range []string{"master", "hub-1", "hub-2"} {
		pub, priv, _ := ed25519.GenerateKey(nil)
		nn.keys[id] = priv
		if id == "master" {
			nn.net.MasterKey = pub
		} else {
			nn.net.Hubs = append(nn.net.Hubs, chain.HubInfo{ID: id, PublicKey: pub})
		}
	}
	nn.writeNetwork(t)
	keys, err := LoadNetworkFile(nn.netPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(reg, "cso_operator", keys))
	t.Cleanup(srv.Close)
	nn.url = srv.URL
	nn.operator = &Client{BaseURL: srv.URL, Token: "cso_operator"}
	return nn
}

func (nn *nodeNet) writeNetwork(t *testing.T) {
	t.Helper()
	b, err := json.Marshal(nn.net)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nn.netPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (nn *nodeNet) signer(id string) *NodeSigner {
	return &NodeSigner{Network: nn.net.ID.String(), ID: id, Key: nn.keys[id]}
}

func (nn *nodeNet) node(id string) *Client {
	return &Client{BaseURL: nn.url, Node: nn.signer(id)}
}

// status returns err's HTTP status and message, or 0.
func status(err error) (int, string) {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.Message
	}
	return 0, ""
}

func TestNodeSignedRequests(t *testing.T) {
	ctx := context.Background()
	nn := newNodeNet(t)
	_, tok, err := nn.operator.Add(ctx, "acme/plant", "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := nn.operator.CreateReadToken(ctx, "auditor", []string{"acme/plant"})
	if err != nil {
		t.Fatal(err)
	}

	// A hub logs devices in and checks read tokens as itself; so does the master.
	for _, id := range []string{"hub-1", "master"} {
		c := nn.node(id)
		if d, err := c.Authenticate(ctx, "dev-1", tok); err != nil || d.UID != "dev-1" {
			t.Fatalf("%s: signed login = %+v, %v", id, d, err)
		}
		if _, err := c.Authenticate(ctx, "dev-1", "cst_wrong"); !errors.Is(err, ErrBadToken) {
			t.Fatalf("%s: signed login with a wrong device token = %v, want ErrBadToken", id, err)
		}
		if got, live, err := c.CheckReadToken(ctx, rt.Token); err != nil || !live || got.ID != rt.ID {
			t.Fatalf("%s: signed read token check = %+v %v %v", id, got, live, err)
		}
		// A device a hub admits by its client certificate: its record, as
		// the hub's credential cache asks for it.
		if d, err := NewCache(c, time.Minute).Get(ctx, "dev-1"); err != nil || d.UID != "dev-1" || d.Status != StatusActive {
			t.Fatalf("%s: signed certificate login lookup = %+v, %v", id, d, err)
		}
		if _, err := c.CertificateDevice(ctx, "dev-none"); err == nil {
			t.Fatalf("%s: certificate login lookup of an unknown device: no error", id)
		}
	}

	// Nothing else: no adding, listing, reading devices or tokens, revoking.
	hub := nn.node("hub-1")
	refusals := map[string]error{}
	_, _, refusals["add"] = hub.Add(ctx, "acme/plant", "dev-evil")
	_, _, refusals["list"] = hub.List(ctx, ListFilter{})
	_, refusals["get"] = hub.Get(ctx, "dev-1")
	_, refusals["revoke device"] = hub.Revoke(ctx, "dev-1")
	_, _, refusals["rotate"] = hub.Rotate(ctx, "dev-1")
	_, refusals["list tokens"] = hub.ReadTokens(ctx)
	_, refusals["create token"] = hub.CreateReadToken(ctx, "evil", []string{"acme/plant"})
	_, refusals["revoke token"] = hub.RevokeReadToken(ctx, rt.ID)
	_, refusals["list nodes"] = hub.Nodes(ctx)
	_, refusals["revoke node"] = hub.RevokeNode(ctx, "hub-2")
	for what, err := range refusals {
		if code, msg := status(err); code != http.StatusForbidden || !strings.Contains(msg, "needs the operator token") {
			t.Errorf("%s signed by hub-1: %v, want 403 naming the operator token", what, err)
		}
	}
	if d, err := nn.operator.Get(ctx, "dev-1"); err != nil || d.Status != StatusActive {
		t.Fatalf("dev-1 after the hub's attempts: %+v %v", d, err)
	}

	// A key that is not the one network.json lists for the id.
	forged := &Client{BaseURL: nn.url, Node: &NodeSigner{Network: nn.net.ID.String(), ID: "hub-1", Key: nn.keys["hub-2"]}}
	if code, msg := status(forgedLogin(ctx, forged, tok)); code != http.StatusUnauthorized || !strings.Contains(msg, "bad signature") {
		t.Errorf("wrong key: %d %q, want 401 bad signature", code, msg)
	}
	// A node network.json does not list.
	stranger := &Client{BaseURL: nn.url, Node: &NodeSigner{Network: nn.net.ID.String(), ID: "hub-9", Key: nn.keys["hub-1"]}}
	if code, msg := status(forgedLogin(ctx, stranger, tok)); code != http.StatusUnauthorized || !strings.Contains(msg, "unknown node") {
		t.Errorf("unknown node: %d %q, want 401 unknown node", code, msg)
	}
	// Another network's signature.
	other := nn.signer("hub-1")
	other.Network = "ffffffffffffffffffffffffffffffff"
	if code, _ := status(forgedLogin(ctx, &Client{BaseURL: nn.url, Node: other}, tok)); code != http.StatusUnauthorized {
		t.Errorf("another network's signature: %d, want 401", code)
	}
	// Stale and future timestamps.
	for _, skew := range []time.Duration{-NodeSkew - 5*time.Second, NodeSkew + 5*time.Second} {
		s := nn.signer("hub-1")
		s.now = func() time.Time { return time.Now().Add(skew) }
		if code, msg := status(forgedLogin(ctx, &Client{BaseURL: nn.url, Node: s}, tok)); code != http.StatusUnauthorized || !strings.Contains(msg, "clock") {
			t.Errorf("ts off by %s: %d %q, want 401 about the clocks", skew, code, msg)
		}
	}
	// An operator token alongside a node's name is not a signature.
	req, _ := http.NewRequest(http.MethodPost, nn.url+"/v1/auth", strings.NewReader(`{"device_uid":"dev-1","token":"`+tok+`"}`))
	req.Header.Set("Authorization", "Cissan-Node node=hub-1")
	if resp := send(t, req); resp.code != http.StatusUnauthorized {
		t.Errorf("a malformed node header: %d, want 401", resp.code)
	}
}

func forgedLogin(ctx context.Context, c *Client, tok string) error {
	_, err := c.Authenticate(ctx, "dev-1", tok)
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return err
}

type answer struct {
	code int
	body string
}

func send(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

// signed builds a request signed by hub-1.
func (nn *nodeNet) signed(t *testing.T, method, target string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, nn.url+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := nn.signer("hub-1").Sign(req, body); err != nil {
		t.Fatal(err)
	}
	return req
}

func resend(t *testing.T, req *http.Request, method, url string, body []byte) answer {
	t.Helper()
	again, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	again.Header.Set("Authorization", req.Header.Get("Authorization"))
	return send(t, again)
}

func TestNodeRequestsCannotBeReplayedOrAltered(t *testing.T) {
	ctx := context.Background()
	nn := newNodeNet(t)
	_, tok, err := nn.operator.Add(ctx, "acme/plant", "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(AuthRequest{UID: "dev-1", Token: tok})
	req := nn.signed(t, http.MethodPost, "/v1/auth", body)
	if a := resend(t, req, http.MethodPost, nn.url+"/v1/auth", body); a.code != http.StatusOK {
		t.Fatalf("signed login: %d %s", a.code, a.body)
	}
	if a := resend(t, req, http.MethodPost, nn.url+"/v1/auth", body); a.code != http.StatusUnauthorized || !strings.Contains(a.body, "replayed") {
		t.Errorf("replayed login: %d %s, want 401 replayed", a.code, a.body)
	}

	// Each part of the request is signed: body, path, query, method.
	req = nn.signed(t, http.MethodPost, "/v1/auth", body)
	other, _ := json.Marshal(AuthRequest{UID: "dev-2", Token: tok})
	for what, a := range map[string]answer{
		"body":   resend(t, req, http.MethodPost, nn.url+"/v1/auth", other),
		"path":   resend(t, req, http.MethodPost, nn.url+"/v1/tokens/check", body),
		"query":  resend(t, req, http.MethodPost, nn.url+"/v1/auth?x=1", body),
		"method": resend(t, req, http.MethodPut, nn.url+"/v1/auth", body),
	} {
		if a.code != http.StatusUnauthorized || !strings.Contains(a.body, "bad signature") {
			t.Errorf("altered %s: %d %s, want 401 bad signature", what, a.code, a.body)
		}
	}
	// The untouched request was never accepted, so it still passes once.
	if a := resend(t, req, http.MethodPost, nn.url+"/v1/auth", body); a.code != http.StatusOK {
		t.Errorf("the signed request after the altered copies: %d %s", a.code, a.body)
	}
}

func TestRevokedNodeIsRefused(t *testing.T) {
	ctx := context.Background()
	nn := newNodeNet(t)
	_, tok, err := nn.operator.Add(ctx, "acme/plant", "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nn.operator.RevokeNode(ctx, "hub-9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke an unknown node: %v, want 404", err)
	}
	n, err := nn.operator.RevokeNode(ctx, "hub-2")
	if err != nil || n.RevokedAt == nil || n.Role != "hub" {
		t.Fatalf("revoke hub-2: %+v %v", n, err)
	}
	if code, msg := status(forgedLogin(ctx, nn.node("hub-2"), tok)); code != http.StatusForbidden || !strings.Contains(msg, "revoked") {
		t.Errorf("revoked hub's login: %d %q, want 403 revoked", code, msg)
	}
	if _, _, err := nn.node("hub-2").CheckReadToken(ctx, "csr_x"); err == nil {
		t.Errorf("revoked hub's read token check passed")
	}
	if _, err := nn.node("hub-1").Authenticate(ctx, "dev-1", tok); err != nil {
		t.Errorf("hub-1 after hub-2's revocation: %v", err)
	}
	ns, err := nn.operator.Nodes(ctx)
	if err != nil || len(ns) != 3 {
		t.Fatalf("nodes: %+v %v", ns, err)
	}
	for _, n := range ns {
		if (n.RevokedAt != nil) != (n.ID == "hub-2") {
			t.Errorf("node %s revoked_at %v", n.ID, n.RevokedAt)
		}
	}
	// Without the operator token, nobody lists or revokes.
	if _, err := (&Client{BaseURL: nn.url}).Nodes(ctx); err == nil {
		t.Errorf("nodes listed without a token")
	}
}

// A hub enrolled later is known once the new network.json is in place.
func TestNodeEnrolledLater(t *testing.T) {
	ctx := context.Background()
	nn := newNodeNet(t)
	_, tok, err := nn.operator.Add(ctx, "acme/plant", "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	nn.keys["hub-3"] = priv
	if code, _ := status(forgedLogin(ctx, nn.node("hub-3"), tok)); code != http.StatusUnauthorized {
		t.Fatalf("hub-3 before its enrolment: %d, want 401", code)
	}
	nn.net.Hubs = append(nn.net.Hubs, chain.HubInfo{ID: "hub-3", PublicKey: pub, FromHeight: 7})
	nn.writeNetwork(t)
	if _, err := nn.node("hub-3").Authenticate(ctx, "dev-1", tok); err != nil {
		t.Fatalf("hub-3 after its enrolment: %v", err)
	}
	// A file that rekeys a hub is not taken: hub-1 keeps its key.
	nn.net.Hubs[0].PublicKey = pub
	nn.net.Hubs = nn.net.Hubs[:3]
	nn.net.Hubs[2].ID = "hub-4"
	nn.writeNetwork(t)
	if _, err := nn.node("hub-1").Authenticate(ctx, "dev-1", tok); err != nil {
		t.Fatalf("hub-1 after a bad network.json: %v", err)
	}
}

func TestNodeNoncesAreForgotten(t *testing.T) {
	a := &NodeAuth{max: 100, seen: map[string]time.Time{}}
	now := time.Unix(1_000_000, 0)
	if err := a.remember("hub-1 n1", now.Add(NodeSkew), now); err != nil {
		t.Fatal(err)
	}
	if err := a.remember("hub-1 n1", now.Add(NodeSkew), now); err == nil {
		t.Fatal("a nonce was accepted twice")
	}
	for i := range a.max - 1 {
		a.seen[fmt.Sprint("hub-2 ", i)] = now.Add(NodeSkew)
	}
	later := now.Add(2 * NodeSkew)
	if err := a.remember("hub-1 n2", later.Add(NodeSkew), now); err == nil {
		t.Fatal("a full replay memory took one more nonce before the others expired")
	}
	if err := a.remember("hub-1 n2", later.Add(NodeSkew), later); err != nil || len(a.seen) != 1 {
		t.Fatalf("after expiry: %v, %d nonces kept", err, len(a.seen))
	}
}

func TestParseNodeAuthIsStrict(t *testing.T) {
	sig := strings.Repeat("ab", 64)
	nonce := strings.Repeat("0f", 16)
	good := "node=hub-1,ts=1765166400,nonce=" + nonce + ",sig=" + sig
	if _, err := parseNodeAuth(good); err != nil {
		t.Fatalf("good header: %v", err)
	}
	for _, bad := range []string{
		"", "node=hub-1", good + ",node=hub-2", good + ",extra=1",
		"node=hub-1,ts=01765166400,nonce=" + nonce + ",sig=" + sig,
		"node=hub-1,ts=+1765166400,nonce=" + nonce + ",sig=" + sig,
		"node=hub-1,ts=1765166400,nonce=" + strings.ToUpper(nonce) + ",sig=" + sig,
		"node=hub-1,ts=1765166400,nonce=" + nonce + ",sig=" + sig[2:],
		"node=hub 1,ts=1765166400,nonce=" + nonce + ",sig=" + sig,
		"node=,ts=1765166400,nonce=" + nonce + ",sig=" + sig,
	} {
		if _, err := parseNodeAuth(bad); err == nil {
			t.Errorf("parseNodeAuth(%q) accepted", bad)
		}
	}
}

// The vector of SPEC.md, section 7a.
func TestNodeMessageVector(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	body := []byte(`{"device_uid":"dev-1","token":"cst_x"}`)
	m := NodeMessage("000102030405060708090a0b0c0d0e0f", "hub-1", 1765166400, "00112233445566778899aabbccddeeff", "POST", "/v1/auth", body)
	want := "cissan/node-request/v1\x00000102030405060708090a0b0c0d0e0f\nhub-1\n1765166400\n00112233445566778899aabbccddeeff\nPOST\n/v1/auth\naefdc25ed187fa2f52bf88fc1568d7be499060af13155449310ab6c788d188f7"
	if string(m) != want {
		t.Fatalf("message %q\nwant    %q", m, want)
	}
	const sig = "15658f3966ef88c3c8c827bd1ef41aed27b12ae837b44b23105ea7febd96e0d485e23469946d0edef7452d20a1535d8d41eca2bf3c2129410cd63158348e8b0a"
	if got := hex.EncodeToString(ed25519.Sign(key, m)); got != sig {
		t.Fatalf("signature %s, want %s", got, sig)
	}
}
