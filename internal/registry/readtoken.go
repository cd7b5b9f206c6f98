package registry

// Read tokens let auditors read the events of some namespaces, and nothing
// else, through the HTTP API and the explorer. Like device tokens they are
// shown once and stored as SHA-256 hashes; unlike the operator token they
// can never change anything.
//
//	POST /v1/tokens              {"label": "...", "namespaces": ["org/group", ...]} -> 201 token + "token"
//	GET  /v1/tokens              -> {"tokens": [...]}   (never the secrets)
//	POST /v1/tokens/{id}/revoke  -> token
//	POST /v1/tokens/check        {"token": "csr_..."} -> the live token, or 404
//
// Every route needs the operator token. Nodes whose registry runs in
// another process ask /v1/tokens/check (RemoteResolver).

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"cissan/internal/access"
	"cissan/internal/event"
)

// readPrefix marks read tokens ("cissan scoped read").
const readPrefix = "csr_"

const readTokenSchema = `
CREATE TABLE IF NOT EXISTS read_tokens (
	id           TEXT PRIMARY KEY,
	label        TEXT NOT NULL,
	namespaces   TEXT NOT NULL,  -- comma-separated; namespaces cannot hold commas
	token_sha256 BLOB NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
	created_us   INTEGER NOT NULL,
	revoked_us   INTEGER          -- NULL while the token works
) WITHOUT ROWID;
`

// ErrTokenNotFound is an unknown read token id.
var ErrTokenNotFound = errors.New("read token not found")

// maxLabel caps a read token's label, which is for people only.
const maxLabel = 128

// ReadToken is a read token as listed: everything but the secret.
type ReadToken struct {
	ID         string     `json:"id"`
	Label      string     `json:"label"`
	Namespaces []string   `json:"namespaces"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// NewReadToken is a read token just created, with its secret: the only
// time the secret is shown.
type NewReadToken struct {
	ReadToken
	Token string `json:"token"`
}

// CreateReadTokenRequest is the body of POST /v1/tokens.
type CreateReadTokenRequest struct {
	Label      string   `json:"label"`
	Namespaces []string `json:"namespaces"`
}

// CreateReadToken issues a token that reads the events of namespaces. The
// namespaces need not have devices yet: an auditor may be given one before
// its fleet is registered.
func (r *Registry) CreateReadToken(ctx context.Context, label string, namespaces []string) (NewReadToken, error) {
	label = strings.TrimSpace(label)
	if label == "" || len(label) > maxLabel {
		return NewReadToken{}, fmt.Errorf("%w: label must be 1..%d bytes", ErrInvalid, maxLabel)
	}
	if len(namespaces) == 0 {
		return NewReadToken{}, fmt.Errorf("%w: at least one namespace is required", ErrInvalid)
	}
	for _, ns := range namespaces {
		if err := event.CheckNamespace(ns, maxNSPart); err != nil {
			return NewReadToken{}, invalid(err)
		}
	}
	ns := slices.Compact(slices.Sorted(slices.Values(namespaces)))
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return NewReadToken{}, fmt.Errorf("create read token: %w", err)
	}
	tok, err := newToken(readPrefix)
	if err != nil {
		return NewReadToken{}, fmt.Errorf("create read token: %w", err)
	}
	sum := hashToken(tok)
	now := r.now().UTC().Truncate(time.Microsecond)
	t := ReadToken{ID: hex.EncodeToString(idb[:]), Label: label, Namespaces: ns, CreatedAt: now}
	if _, err := r.db.ExecContext(ctx,
		`INSERT INTO read_tokens (id, label, namespaces, token_sha256, created_us) VALUES (?, ?, ?, ?, ?)`,
		t.ID, t.Label, strings.Join(ns, ","), sum[:], now.UnixMicro()); err != nil {
		return NewReadToken{}, fmt.Errorf("create read token: %w", err)
	}
	return NewReadToken{ReadToken: t, Token: tok}, nil
}

func scanReadToken(s scanner) (ReadToken, error) {
	var t ReadToken
	var ns string
	var created int64
	var revoked sql.NullInt64
	if err := s.Scan(&t.ID, &t.Label, &ns, &created, &revoked); err != nil {
		return ReadToken{}, err
	}
	t.Namespaces = strings.Split(ns, ",")
	t.CreatedAt = time.UnixMicro(created).UTC()
	if revoked.Valid {
		at := time.UnixMicro(revoked.Int64).UTC()
		t.RevokedAt = &at
	}
	return t, nil
}

const readTokenCols = `id, label, namespaces, created_us, revoked_us`

// ReadTokens lists every read token, revoked ones included, oldest first.
func (r *Registry) ReadTokens(ctx context.Context) ([]ReadToken, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+readTokenCols+` FROM read_tokens ORDER BY created_us, id`)
	if err != nil {
		return nil, fmt.Errorf("list read tokens: %w", err)
	}
	defer rows.Close()
	out := []ReadToken{}
	for rows.Next() {
		t, err := scanReadToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list read tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list read tokens: %w", err)
	}
	return out, nil
}

// RevokeReadToken stops the token with this id from working, at once and
// for good. Revoking a revoked token is harmless and keeps the first time.
func (r *Registry) RevokeReadToken(ctx context.Context, id string) (ReadToken, error) {
	now := r.now().UTC().Truncate(time.Microsecond)
	if _, err := r.db.ExecContext(ctx,
		`UPDATE read_tokens SET revoked_us = ? WHERE id = ? AND revoked_us IS NULL`, now.UnixMicro(), id); err != nil {
		return ReadToken{}, fmt.Errorf("revoke read token %q: %w", id, err)
	}
	t, err := scanReadToken(r.db.QueryRowContext(ctx, `SELECT `+readTokenCols+` FROM read_tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ReadToken{}, fmt.Errorf("revoke read token %q: %w", id, ErrTokenNotFound)
	}
	if err != nil {
		return ReadToken{}, fmt.Errorf("revoke read token %q: %w", id, err)
	}
	return t, nil
}

// LookupReadToken returns the live read token whose secret is token.
// The lookup is by hash, so no comparison runs over the secret itself.
func (r *Registry) LookupReadToken(ctx context.Context, token string) (ReadToken, bool, error) {
	if !strings.HasPrefix(token, readPrefix) {
		return ReadToken{}, false, nil
	}
	sum := hashToken(token)
	var stored []byte
	row := r.db.QueryRowContext(ctx,
		`SELECT `+readTokenCols+`, token_sha256 FROM read_tokens WHERE token_sha256 = ? AND revoked_us IS NULL`, sum[:])
	var t ReadToken
	var ns string
	var created int64
	var revoked sql.NullInt64
	err := row.Scan(&t.ID, &t.Label, &ns, &created, &revoked, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return ReadToken{}, false, nil
	}
	if err != nil {
		return ReadToken{}, false, fmt.Errorf("look up read token: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, sum[:]) != 1 {
		return ReadToken{}, false, nil
	}
	t.Namespaces = strings.Split(ns, ",")
	t.CreatedAt = time.UnixMicro(created).UTC()
	return t, true, nil
}

// Resolver returns the access.Resolver of a node that holds the registry:
// the operator token reads everything, a live read token its namespaces,
// anything else only what is public. A registry error counts as no access
// (and is not retried): failing closed is the safe side for privacy.
func (r *Registry) Resolver(operatorToken string) access.Resolver {
	return func(req *http.Request, token string) access.Access {
		if EqualToken(token, operatorToken) {
			return access.Access{All: true, Label: "operator"}
		}
		t, ok, err := r.LookupReadToken(req.Context(), token)
		if err != nil || !ok {
			return access.Public
		}
		return access.Access{Namespaces: t.Namespaces, Label: t.Label}
	}
}

// OperatorResolver is the access.Resolver of a node without the registry:
// only the operator token reads anything.
func OperatorResolver(operatorToken string) access.Resolver {
	return func(_ *http.Request, token string) access.Access {
		if EqualToken(token, operatorToken) {
			return access.Access{All: true, Label: "operator"}
		}
		return access.Public
	}
}

// NewReadTokenHandler serves /v1/tokens (see the file comment); every
// request must satisfy authorize (the operator's bearer token).
func NewReadTokenHandler(r *Registry, authorize func(*http.Request) bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, req *http.Request) {
		var body CreateReadTokenRequest
		if !decodeBody(w, req, &body) {
			return
		}
		t, err := r.CreateReadToken(req.Context(), body.Label, body.Namespaces)
		if err != nil {
			writeErr(w, req, err)
			return
		}
		writeJSON(w, http.StatusCreated, t)
	})
	mux.HandleFunc("GET /v1/tokens", func(w http.ResponseWriter, req *http.Request) {
		ts, err := r.ReadTokens(req.Context())
		if err != nil {
			writeErr(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"tokens": ts})
	})
	mux.HandleFunc("POST /v1/tokens/check", func(w http.ResponseWriter, req *http.Request) {
		var body CheckReadTokenRequest
		if !decodeBody(w, req, &body) {
			return
		}
		t, ok, err := r.LookupReadToken(req.Context(), body.Token)
		switch {
		case err != nil:
			writeErr(w, req, err)
		case !ok:
			writeError(w, http.StatusNotFound, "no such live read token")
		default:
			writeJSON(w, http.StatusOK, t)
		}
	})
	mux.HandleFunc("POST /v1/tokens/{id}/revoke", func(w http.ResponseWriter, req *http.Request) {
		t, err := r.RevokeReadToken(req.Context(), req.PathValue("id"))
		if errors.Is(err, ErrTokenNotFound) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		if err != nil {
			writeErr(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	return operatorOnly(authorize, mux)
}

// CreateReadToken asks the registry API for a read token.
func (c *Client) CreateReadToken(ctx context.Context, label string, namespaces []string) (NewReadToken, error) {
	var t NewReadToken
	err := c.do(ctx, http.MethodPost, "/v1/tokens", CreateReadTokenRequest{Label: label, Namespaces: namespaces}, &t)
	return t, err
}

// ReadTokens lists the registry's read tokens.
func (c *Client) ReadTokens(ctx context.Context) ([]ReadToken, error) {
	var out struct {
		Tokens []ReadToken `json:"tokens"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out)
	return out.Tokens, err
}

// CheckReadTokenRequest is the body of POST /v1/tokens/check. The token
// travels in the body, never in a URL, so that no access log records it.
type CheckReadTokenRequest struct {
	Token string `json:"token"`
}

// CheckReadToken asks the registry whether token is a live read token.
func (c *Client) CheckReadToken(ctx context.Context, token string) (ReadToken, bool, error) {
	var t ReadToken
	err := c.do(ctx, http.MethodPost, "/v1/tokens/check", CheckReadTokenRequest{Token: token}, &t)
	if errors.Is(err, ErrNotFound) {
		return ReadToken{}, false, nil
	}
	return t, err == nil, err
}

// RemoteResolver is the access.Resolver of a node whose registry runs in
// another process: the operator token (this node's) reads everything, and
// read tokens are checked with the registry, whose answer is remembered for
// ttl, so a revocation reaches this node within ttl. A registry that does
// not answer grants nothing (and is asked again on the next request).
func RemoteResolver(c *Client, operatorToken string, ttl time.Duration) access.Resolver {
	type cached struct {
		a       access.Access
		expires time.Time
	}
	var mu sync.Mutex
	cache := map[[32]byte]cached{}
	return func(req *http.Request, token string) access.Access {
		if EqualToken(token, operatorToken) {
			return access.Access{All: true, Label: "operator"}
		}
		if !strings.HasPrefix(token, readPrefix) {
			return access.Public
		}
		key := hashToken(token)
		now := time.Now()
		mu.Lock()
		hit, ok := cache[key]
		mu.Unlock()
		if ok && now.Before(hit.expires) {
			return hit.a
		}
		t, live, err := c.CheckReadToken(req.Context(), token)
		if err != nil {
			return access.Public
		}
		a := access.Public
		if live {
			a = access.Access{Namespaces: t.Namespaces, Label: t.Label}
		}
		mu.Lock()
		if len(cache) >= 10_000 { // bounded: forget everything rather than grow
			clear(cache)
		}
		cache[key] = cached{a, now.Add(ttl)}
		mu.Unlock()
		return a
	}
}

// RevokeReadToken revokes the read token with this id.
func (c *Client) RevokeReadToken(ctx context.Context, id string) (ReadToken, error) {
	var t ReadToken
	err := c.do(ctx, http.MethodPost, "/v1/tokens/"+url.PathEscape(id)+"/revoke", nil, &t)
	return t, err
}
