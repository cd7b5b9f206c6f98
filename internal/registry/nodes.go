package registry

// The nodes the registry knows (from network.json), and revoking them:
//
//	GET  /v1/nodes              -> {"nodes": [{"id","role","public_key","revoked_at"}]}
//	POST /v1/nodes/{id}/revoke  -> the node
//
// Both need the operator token. A revoked node's signed requests are
// refused (403) from then on, for good: a hub whose machine was taken is
// replaced by a new hub, enrolled with a new key under a new id.

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"cissan/internal/chain"
)

const nodeSchema = `
CREATE TABLE IF NOT EXISTS revoked_nodes (
	id         TEXT PRIMARY KEY,
	revoked_us INTEGER NOT NULL
) WITHOUT ROWID;
`

// masterID is the master's node id (bus.MasterNode): it signs with the
// key network.json names master_public_key.
const masterID = "master"

// Node is a node as the registry lists it.
type Node struct {
	ID        string     `json:"id"`
	Role      string     `json:"role"` // "master" or "hub"
	PublicKey string     `json:"public_key"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// RevokeNode refuses every later request the node signs. Revoking a
// revoked node keeps the first time.
func (r *Registry) RevokeNode(ctx context.Context, id string) (time.Time, error) {
	if _, err := r.db.ExecContext(ctx, `INSERT INTO revoked_nodes (id, revoked_us) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`,
		id, r.now().UTC().UnixMicro()); err != nil {
		return time.Time{}, fmt.Errorf("revoke node %q: %w", id, err)
	}
	var us int64
	if err := r.db.QueryRowContext(ctx, `SELECT revoked_us FROM revoked_nodes WHERE id = ?`, id).Scan(&us); err != nil {
		return time.Time{}, fmt.Errorf("revoke node %q: %w", id, err)
	}
	return time.UnixMicro(us).UTC(), nil
}

// NodeRevoked reports whether the node is revoked.
func (r *Registry) NodeRevoked(ctx context.Context, id string) (bool, error) {
	at, err := r.nodeRevokedAt(ctx, id)
	return at != nil, err
}

func (r *Registry) nodeRevokedAt(ctx context.Context, id string) (*time.Time, error) {
	var us int64
	err := r.db.QueryRowContext(ctx, `SELECT revoked_us FROM revoked_nodes WHERE id = ?`, id).Scan(&us)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node %q revoked: %w", id, err)
	}
	at := time.UnixMicro(us).UTC()
	return &at, nil
}

// NetworkFile is the registry's view of network.json: the master's and the
// hubs' keys. A node it does not know makes it read the file again if the
// file changed, so a hub enrolled later is known once the operator copies
// the new network.json over the old one.
type NetworkFile struct {
	path string

	mu    sync.Mutex
	net   *chain.Network
	mod   time.Time
	size  int64
	stale error // why the last changed file was not taken, if it was not
}

// LoadNetworkFile reads network.json at path.
func LoadNetworkFile(path string) (*NetworkFile, error) {
	f := &NetworkFile{path: path}
	if err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// reload reads the file if it changed since it was last read. A file of
// another network, or one that drops or rekeys a node, is not taken.
func (f *NetworkFile) reload() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("network file: %w", err)
	}
	if f.net != nil && fi.ModTime().Equal(f.mod) && fi.Size() == f.size {
		return nil
	}
	n, err := chain.LoadNetwork(f.path)
	if err != nil {
		return fmt.Errorf("network file: %w", err)
	}
	if f.net != nil {
		if n.ID != f.net.ID || !n.MasterKey.Equal(f.net.MasterKey) {
			return fmt.Errorf("network file %s: now names another network", f.path)
		}
		for _, h := range f.net.Hubs {
			if nh := n.Hub(h.ID); nh == nil || !nh.PublicKey.Equal(h.PublicKey) {
				return fmt.Errorf("network file %s: hub %s is gone or has another key", f.path, h.ID)
			}
		}
	}
	f.net, f.mod, f.size = n, fi.ModTime(), fi.Size()
	return nil
}

// NetworkID returns the network's id.
func (f *NetworkFile) NetworkID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.net.ID.String()
}

// NodeKey returns the key node id signs with.
func (f *NetworkFile) NodeKey(id string) (ed25519.PublicKey, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k, ok := f.key(id); ok {
		return k, true
	}
	if err := f.reload(); err != nil {
		f.stale = err
		return nil, false
	}
	return f.key(id)
}

func (f *NetworkFile) key(id string) (ed25519.PublicKey, bool) {
	if id == masterID {
		return f.net.MasterKey, true
	}
	if h := f.net.Hub(id); h != nil {
		return h.PublicKey, true
	}
	return nil, false
}

// nodes lists the master and the hubs, rereading the file if it changed.
func (f *NetworkFile) nodes() ([]Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(); err != nil {
		f.stale = err
	}
	out := []Node{{ID: masterID, Role: "master", PublicKey: hex.EncodeToString(f.net.MasterKey)}}
	for _, h := range f.net.Hubs {
		out = append(out, Node{ID: h.ID, Role: "hub", PublicKey: hex.EncodeToString(h.PublicKey)})
	}
	return out, f.stale
}

// NewNodeHandler serves /v1/nodes (see the file comment); every request
// must satisfy authorize (the operator's bearer token). A nil keys lists
// nothing and revokes nothing.
func NewNodeHandler(r *Registry, keys *NetworkFile, authorize func(*http.Request) bool) http.Handler {
	mux := http.NewServeMux()
	list := func(ctx context.Context) ([]Node, error) {
		if keys == nil {
			return []Node{}, nil
		}
		ns, _ := keys.nodes()
		for i := range ns {
			at, err := r.nodeRevokedAt(ctx, ns[i].ID)
			if err != nil {
				return nil, err
			}
			ns[i].RevokedAt = at
		}
		return ns, nil
	}
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, req *http.Request) {
		ns, err := list(req.Context())
		if err != nil {
			writeErr(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"nodes": ns})
	})
	mux.HandleFunc("POST /v1/nodes/{id}/revoke", func(w http.ResponseWriter, req *http.Request) {
		if !emptyBody(w, req) {
			return
		}
		id := req.PathValue("id")
		ns, err := list(req.Context())
		if err != nil {
			writeErr(w, req, err)
			return
		}
		for _, n := range ns {
			if n.ID != id {
				continue
			}
			at, err := r.RevokeNode(req.Context(), id)
			if err != nil {
				writeErr(w, req, err)
				return
			}
			n.RevokedAt = &at
			writeJSON(w, http.StatusOK, n)
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no node %q in the registry's network.json", id))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	return operatorOnly(authorize, mux)
}

// Nodes lists the nodes the registry knows, with their revocations.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out struct {
		Nodes []Node `json:"nodes"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
	return out.Nodes, err
}

// RevokeNode revokes a node at the registry.
func (c *Client) RevokeNode(ctx context.Context, id string) (Node, error) {
	var n Node
	err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(id)+"/revoke", nil, &n)
	return n, err
}

// NewServer is the registry's whole HTTP API as `cissan registry` serves
// it: devices, read tokens and nodes for the operator token; device
// logins and read token checks for nodes too, each signing as itself with
// a key keys lists. A nil keys admits no node.
func NewServer(r *Registry, operatorToken string, keys *NetworkFile) http.Handler {
	op := OperatorAuth(operatorToken)
	mux := http.NewServeMux()
	tokens := NewReadTokenHandler(r, OperatorOrNode(op))
	mux.Handle("/v1/tokens", tokens)
	mux.Handle("/v1/tokens/", tokens)
	nodes := NewNodeHandler(r, keys, op)
	mux.Handle("/v1/nodes", nodes)
	mux.Handle("/v1/nodes/", nodes)
	mux.Handle("/", NewHandler(r, OperatorOrNode(op)))
	var auth *NodeAuth
	if keys != nil {
		auth = NewNodeAuth(keys, r)
	}
	return NodeGate(auth, mux)
}
