package registry

// Node requests: hubs (and the master) call the registry as themselves,
// signing each request with the Ed25519 key that network.json lists for
// them, never with the operator's token. A node may call only what it
// needs (NodeRoutes); the operator token keeps everything else.
//
//	Authorization: Cissan-Node node=hub-1,ts=1765166400,nonce=<32 hex>,sig=<128 hex>
//
// sig is Ed25519 over NodeMessage: "cissan/node-request/v1\x00", then
// the lines
//
//	<network id, 32 hex>
//	<node id>
//	<ts: Unix seconds, decimal>
//	<nonce: 16 random bytes, 32 lowercase hex>
//	<method>
//	<request target: path and query exactly as sent>
//	<SHA-256 of the body, 64 lowercase hex>
//
// joined by "\n", with no newline at the end. The registry refuses a ts
// more than NodeSkew from its clock, a nonce it has seen from that node
// within the window, an unknown node, a wrong signature and a revoked
// node; see SPEC.md, "Node requests to the registry".

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NodeScheme is the Authorization scheme of node requests.
const NodeScheme = "Cissan-Node"

// NodeSkew bounds how far a request's timestamp may be from the
// registry's clock, either way; a nonce is remembered this long after it.
const NodeSkew = 60 * time.Second

// nodeDomain starts every signed request, so that no other message a node
// signs (blocks, validations) can pass for one.
const nodeDomain = "cissan/node-request/v1\x00"

// maxNonces bounds the replay memory; only requests with a good signature
// enter it, so only a node's own key can fill it.
const maxNonces = 1 << 20

// NodeRoutes are the only requests a node's signature admits: a device's
// login (by token, or by a client certificate the hub verified), and
// whether a read token is live. Every other route needs the operator
// token.
var NodeRoutes = []string{"POST /v1/auth", "POST /v1/auth/certificate", "POST /v1/tokens/check"}

// NodeMessage returns the bytes a node signs for one request.
func NodeMessage(network, node string, ts int64, nonce, method, target string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte(nodeDomain + strings.Join([]string{network, node, strconv.FormatInt(ts, 10), nonce,
		method, target, hex.EncodeToString(sum[:])}, "\n"))
}

// NodeSigner signs a node's requests to the registry.
type NodeSigner struct {
	Network string // the network id, as network.json writes it
	ID      string // the node's id: a hub's id, or "master"
	Key     ed25519.PrivateKey

	now func() time.Time // time.Now if nil
}

// Sign sets req's Authorization header; body is the request's body.
func (s *NodeSigner) Sign(req *http.Request, body []byte) error {
	var nb [16]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	ts, nonce := now().Unix(), hex.EncodeToString(nb[:])
	sig := ed25519.Sign(s.Key, NodeMessage(s.Network, s.ID, ts, nonce, req.Method, req.URL.RequestURI(), body))
	req.Header.Set("Authorization", fmt.Sprintf("%s node=%s,ts=%d,nonce=%s,sig=%s", NodeScheme, s.ID, ts, nonce, hex.EncodeToString(sig)))
	return nil
}

// NodeKeys says which key each node signs with (NetworkFile reads them
// from network.json).
type NodeKeys interface {
	NetworkID() string
	NodeKey(id string) (ed25519.PublicKey, bool)
}

// nodeRequest is a parsed Cissan-Node Authorization header.
type nodeRequest struct {
	node, nonce string
	ts          int64
	sig         []byte
}

// parseNodeAuth reads "node=..,ts=..,nonce=..,sig=.." strictly: each key
// once, nothing else, canonical numbers and lowercase hex only, so that a
// header can be read one way only.
func parseNodeAuth(params string) (nodeRequest, error) {
	var nr nodeRequest
	seen := map[string]bool{}
	for _, kv := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return nr, errors.New("want node=ID,ts=SECONDS,nonce=HEX,sig=HEX")
		}
		seen[k] = true
		switch k {
		case "node":
			if v == "" || len(v) > 128 || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' || r == ',' || r == '=' }) {
				return nr, errors.New("bad node id")
			}
			nr.node = v
		case "ts":
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil || strconv.FormatInt(t, 10) != v {
				return nr, errors.New("ts must be Unix seconds in decimal")
			}
			nr.ts = t
		case "nonce":
			if len(v) != 32 || !lowerHex(v) {
				return nr, errors.New("nonce must be 32 lowercase hex digits")
			}
			nr.nonce = v
		case "sig":
			if len(v) != 2*ed25519.SignatureSize || !lowerHex(v) {
				return nr, fmt.Errorf("sig must be %d lowercase hex digits", 2*ed25519.SignatureSize)
			}
			nr.sig, _ = hex.DecodeString(v)
		default:
			return nr, fmt.Errorf("unknown parameter %q", k)
		}
	}
	if len(seen) != 4 {
		return nr, errors.New("want node=ID,ts=SECONDS,nonce=HEX,sig=HEX")
	}
	return nr, nil
}

func lowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NodeAuth checks node requests at the registry.
type NodeAuth struct {
	keys    NodeKeys
	revoked func(ctx context.Context, id string) (bool, error)
	now     func() time.Time
	max     int // nonces remembered at most (maxNonces)

	mu   sync.Mutex
	seen map[string]time.Time // node + " " + nonce -> when it may be forgotten
}

// NewNodeAuth checks signatures against keys and revocations in r.
func NewNodeAuth(keys NodeKeys, r *Registry) *NodeAuth {
	return &NodeAuth{keys: keys, revoked: r.NodeRevoked, now: time.Now, max: maxNonces, seen: map[string]time.Time{}}
}

// nodeError is a refused node request: its HTTP status and message.
type nodeError struct {
	status int
	msg    string
}

func (e *nodeError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &nodeError{status, fmt.Sprintf(format, args...)}
}

// verify checks the node signature of req, whose Authorization header
// carried params, and returns the node's id. It reads the body, and puts
// it back for the handler.
func (a *NodeAuth) verify(req *http.Request, params string) (string, error) {
	nr, err := parseNodeAuth(params)
	if err != nil {
		return "", refuse(http.StatusUnauthorized, "node signature: %v", err)
	}
	now := a.now()
	if d := now.Sub(time.Unix(nr.ts, 0)); d > NodeSkew || d < -NodeSkew {
		return "", refuse(http.StatusUnauthorized, "node signature: ts is %s from the registry's clock (at most %s): check the clocks", d.Round(time.Second), NodeSkew)
	}
	key, ok := a.keys.NodeKey(nr.node)
	if !ok {
		return "", refuse(http.StatusUnauthorized, "node signature: unknown node %q (not in the registry's network.json)", nr.node)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil {
		return "", refuse(http.StatusBadRequest, "read body: %v", err)
	}
	if len(body) > maxBody {
		return "", refuse(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", maxBody)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	target := req.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = req.URL.RequestURI()
	}
	if !ed25519.Verify(key, NodeMessage(a.keys.NetworkID(), nr.node, nr.ts, nr.nonce, req.Method, target, body), nr.sig) {
		return "", refuse(http.StatusUnauthorized, "node signature: bad signature from %q (wrong key, or the request was altered)", nr.node)
	}
	revoked, err := a.revoked(req.Context(), nr.node)
	if err != nil {
		return "", err
	}
	if revoked {
		return "", refuse(http.StatusForbidden, "node %q is revoked on this registry", nr.node)
	}
	if err := a.remember(nr.node+" "+nr.nonce, time.Unix(nr.ts, 0).Add(NodeSkew+time.Second), now); err != nil {
		return "", err
	}
	return nr.node, nil
}

// remember records a nonce until forget, refusing one already seen.
func (a *NodeAuth) remember(key string, forget, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.seen[key]; ok {
		return refuse(http.StatusUnauthorized, "node signature: replayed request (nonce already used)")
	}
	if len(a.seen) >= a.max {
		for k, t := range a.seen {
			if now.After(t) {
				delete(a.seen, k)
			}
		}
		if len(a.seen) >= a.max {
			return refuse(http.StatusServiceUnavailable, "too many node requests in the last %s", 2*NodeSkew)
		}
	}
	a.seen[key] = forget
	return nil
}

type nodeKey struct{}

// NodeOf returns the node whose signature admitted req (NodeGate), or "".
func NodeOf(req *http.Request) string {
	id, _ := req.Context().Value(nodeKey{}).(string)
	return id
}

// OperatorOrNode admits the operator (op), and requests NodeGate admitted.
func OperatorOrNode(op func(*http.Request) bool) func(*http.Request) bool {
	return func(req *http.Request) bool { return NodeOf(req) != "" || op(req) }
}

// NodeGate serves h, checking node-signed requests on the way: a good
// signature on one of NodeRoutes passes with its node in the request's
// context (NodeOf); any other is refused, 401 for a bad signature, 403 for
// a revoked node or a route a node may not call. Requests without a node
// signature pass untouched: h checks the operator token. A nil a refuses
// every node request.
func NodeGate(a *NodeAuth, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		scheme, params, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, NodeScheme) {
			h.ServeHTTP(w, req)
			return
		}
		if a == nil {
			writeError(w, http.StatusUnauthorized, "node signature: this registry knows no nodes (start it with --network)")
			return
		}
		id, err := a.verify(req, params)
		var ne *nodeError
		switch {
		case errors.As(err, &ne):
			writeError(w, ne.status, ne.msg)
			return
		case err != nil:
			writeErr(w, req, err)
			return
		}
		route := req.Method + " " + req.URL.Path
		allowed := false
		for _, r := range NodeRoutes {
			allowed = allowed || r == route
		}
		if !allowed {
			writeError(w, http.StatusForbidden, fmt.Sprintf("node %q may only call %s; %s needs the operator token",
				id, strings.Join(NodeRoutes, ", "), route))
			return
		}
		h.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), nodeKey{}, id)))
	})
}
