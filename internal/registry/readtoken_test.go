package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"cissan/internal/access"
)

func TestReadTokenLifecycle(t *testing.T) {
	r, _ := openTest(t)
	ctx := context.Background()
	const op = "cso_operator"
	resolve := r.Resolver(op)
	req := httptest.NewRequest(http.MethodGet, "/", nil)

	nt, err := r.CreateReadToken(ctx, "auditor", []string{"beta/lab", "acme/weather", "beta/lab"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(nt.Token, readPrefix) || len(nt.Token) != len(readPrefix)+43 {
		t.Fatalf("token %q: want %s and 43 base64url characters", nt.Token, readPrefix)
	}
	if want := []string{"acme/weather", "beta/lab"}; !slices.Equal(nt.Namespaces, want) {
		t.Fatalf("namespaces %v, want sorted and deduplicated %v", nt.Namespaces, want)
	}
	a := resolve(req, nt.Token)
	if a.All || !a.Allows("beta/lab") || a.Allows("acme/plant") || a.Label != "auditor" {
		t.Fatalf("read token access = %+v", a)
	}
	if a := resolve(req, op); !a.All {
		t.Fatalf("operator token access = %+v, want all", a)
	}
	for _, bad := range []string{"", "csr_nope", nt.Token + "x", strings.TrimPrefix(nt.Token, readPrefix)} {
		if a := resolve(req, bad); a.Granted() {
			t.Errorf("token %q granted %+v", bad, a)
		}
	}

	// The secret is not stored: only its hash is.
	var n int
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM read_tokens WHERE instr(CAST(token_sha256 AS TEXT), ?) > 0 OR instr(namespaces, ?) > 0`,
		nt.Token, nt.Token).Scan(&n); err != nil || n != 0 {
		t.Fatalf("secret found in the table (%d rows, err %v)", n, err)
	}

	list, err := r.ReadTokens(ctx)
	if err != nil || len(list) != 1 || list[0].ID != nt.ID || list[0].RevokedAt != nil {
		t.Fatalf("list = %+v, %v", list, err)
	}
	rt, err := r.RevokeReadToken(ctx, nt.ID)
	if err != nil || rt.RevokedAt == nil {
		t.Fatalf("revoke = %+v, %v", rt, err)
	}
	if a := resolve(req, nt.Token); a.Granted() {
		t.Fatalf("revoked token still grants %+v", a)
	}
	if _, err := r.RevokeReadToken(ctx, "nope"); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("revoke unknown id: %v, want ErrTokenNotFound", err)
	}
}

func TestReadTokenRefusesBadInput(t *testing.T) {
	r, _ := openTest(t)
	ctx := context.Background()
	for name, c := range map[string]struct {
		label string
		ns    []string
	}{
		"no label":      {"", []string{"a/b"}},
		"no namespace":  {"x", nil},
		"bad namespace": {"x", []string{"a,b/c"}},
		"one part":      {"x", []string{"acme"}},
		"long label":    {strings.Repeat("l", maxLabel+1), []string{"a/b"}},
	} {
		if _, err := r.CreateReadToken(ctx, c.label, c.ns); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

func TestReadTokenHTTP(t *testing.T) {
	r, _ := openTest(t)
	const op = "cso_operator"
	srv := httptest.NewServer(NewReadTokenHandler(r, OperatorAuth(op)))
	defer srv.Close()
	ctx := context.Background()

	anon := &Client{BaseURL: srv.URL}
	if _, err := anon.CreateReadToken(ctx, "x", []string{"a/b"}); err == nil {
		t.Fatal("created a read token without the operator token")
	}
	c := &Client{BaseURL: srv.URL, Token: op}
	nt, err := c.CreateReadToken(ctx, "auditor", []string{"acme/weather"})
	if err != nil {
		t.Fatal(err)
	}
	// A read token cannot manage tokens.
	if _, err := (&Client{BaseURL: srv.URL, Token: nt.Token}).ReadTokens(ctx); err == nil {
		t.Fatal("a read token listed the read tokens")
	}
	list, err := c.ReadTokens(ctx)
	if err != nil || len(list) != 1 || list[0].Label != "auditor" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if _, err := c.RevokeReadToken(ctx, nt.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevokeReadToken(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke missing: %v, want 404", err)
	}
	if a := access.Of(withBearer(nt.Token), r.Resolver(op)); a.Granted() {
		t.Fatalf("revoked token grants %+v", a)
	}
}

func withBearer(tok string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

func TestRemoteResolver(t *testing.T) {
	r, _ := openTest(t)
	const op = "cso_registry_operator"
	srv := httptest.NewServer(NewReadTokenHandler(r, OperatorAuth(op)))
	ctx := context.Background()
	nt, err := r.CreateReadToken(ctx, "auditor", []string{"acme/weather"})
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 200 * time.Millisecond
	resolve := RemoteResolver(&Client{BaseURL: srv.URL, Token: op}, "cso_node_operator", ttl)
	req := httptest.NewRequest(http.MethodGet, "/", nil)

	if a := resolve(req, "cso_node_operator"); !a.All {
		t.Fatalf("the node's operator token: %+v", a)
	}
	if a := resolve(req, op); a.Granted() {
		t.Fatalf("the registry's operator token is not this node's: %+v", a)
	}
	if a := resolve(req, nt.Token); !a.Allows("acme/weather") || a.Allows("beta/lab") || a.All {
		t.Fatalf("read token: %+v", a)
	}
	if a := resolve(req, "csr_unknown"); a.Granted() {
		t.Fatalf("unknown read token: %+v", a)
	}
	if _, err := r.RevokeReadToken(ctx, nt.ID); err != nil {
		t.Fatal(err)
	}
	if a := resolve(req, nt.Token); !a.Granted() {
		t.Fatalf("revocation seen before the cached answer expired: %+v (ttl %v)", a, ttl)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	if a := resolve(req, nt.Token); a.Granted() {
		t.Fatalf("revoked token still grants %+v after the ttl", a)
	}
	// A registry that does not answer grants nothing.
	nt2, err := r.CreateReadToken(ctx, "auditor-2", []string{"acme/weather"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if a := resolve(req, nt2.Token); a.Granted() {
		t.Fatalf("registry down: %+v", a)
	}
}
