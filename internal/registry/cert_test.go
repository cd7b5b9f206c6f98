package registry

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// TestRequireCert: a device added requiring a certificate says so in Get,
// Authenticate and List, locally and over HTTP; others do not.
func TestRequireCert(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	srv := httptest.NewServer(NewHandler(r, OperatorAuth("op")))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Token: "op"}

	d, tok, err := r.AddRequiringCert(ctx, "acme/plant", "cert-1")
	if err != nil || !d.RequireCert {
		t.Fatalf("AddRequiringCert: %+v, %v", d, err)
	}
	if d, err := r.Authenticate(ctx, "cert-1", tok); err != nil || !d.RequireCert {
		t.Fatalf("Authenticate: %+v, %v; want the requirement", d, err)
	}
	if d, _, err := c.AddRequiringCert(ctx, "acme/plant", "cert-2"); err != nil || !d.RequireCert {
		t.Fatalf("AddRequiringCert over HTTP: %+v, %v", d, err)
	}
	if d, _, err := c.Add(ctx, "acme/plant", "plain-1"); err != nil || d.RequireCert {
		t.Fatalf("Add over HTTP: %+v, %v; want no requirement", d, err)
	}
	for uid, want := range map[string]bool{"cert-1": true, "cert-2": true, "plain-1": false} {
		if d, err := c.Get(ctx, uid); err != nil || d.RequireCert != want {
			t.Errorf("Get %s: %+v, %v; want require_cert %v", uid, d, err, want)
		}
	}
	devs, err := r.List(ctx, ListFilter{})
	if err != nil || len(devs) != 3 {
		t.Fatalf("List: %v, %v", devs, err)
	}
	cache := NewCache(c, 0)
	if d, err := cache.Get(ctx, "cert-2"); err != nil || !d.RequireCert {
		t.Fatalf("Cache.Get: %+v, %v", d, err)
	}
}

// TestOpenAddsRequireCertColumn opens a registry file made before client
// certificates: its devices keep working, requiring none.
func TestOpenAddsRequireCertColumn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE devices (
		uid TEXT PRIMARY KEY, namespace TEXT NOT NULL,
		status TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'revoked')),
		token_sha256 BLOB NOT NULL CHECK (length(token_sha256) = 32),
		created_us INTEGER NOT NULL, updated_us INTEGER NOT NULL, token_rotated_us INTEGER NOT NULL
	) WITHOUT ROWID`)
	if err == nil {
		sum := hashToken("cst_old")
		_, err = db.Exec(`INSERT INTO devices VALUES ('old-1', 'acme/plant', 'active', ?, 1, 1, 1)`, sum[:])
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second open finds the column there
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		d, err := r.Authenticate(ctx, "old-1", "cst_old")
		r.Close()
		if err != nil || d.RequireCert {
			t.Fatalf("old device: %+v, %v", d, err)
		}
	}
}
