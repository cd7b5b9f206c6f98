package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cissan/internal/registry"
)

// TestToken drives cissan token against a registry's read-token API.
func TestToken(t *testing.T) {
	reg, err := registry.Open(filepath.Join(t.TempDir(), "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	const op = "cso_test_operator"
	srv := httptest.NewServer(registry.NewReadTokenHandler(reg, registry.OperatorAuth(op)))
	defer srv.Close()
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokFile, []byte(op+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CISSAN_TOKEN", "")
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runToken(t.Context(), Env{Stdout: &out, Stderr: &errOut}, append(args, "--api", srv.URL, "--token-file", tokFile))
		return out.String(), errOut.String(), err
	}

	out, stderr, err := run("create", "--namespace", "acme/weather, beta/lab", "--label", "auditor")
	if err != nil {
		t.Fatalf("create: %v (%s)", err, stderr)
	}
	var created registry.NewReadToken
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Token, "csr_") ||
		strings.Join(created.Namespaces, ",") != "acme/weather,beta/lab" {
		t.Fatalf("create printed %s (%v)", out, err)
	}
	if !strings.Contains(stderr, "Store the token now") {
		t.Errorf("create does not warn that the token is shown once: %q", stderr)
	}
	out, _, err = run("list")
	if err != nil || !strings.Contains(out, created.ID) || strings.Contains(out, created.Token) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, _, err = run("revoke", created.ID); err != nil || !strings.Contains(out, "revoked_at") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if _, ok, _ := reg.LookupReadToken(t.Context(), created.Token); ok {
		t.Fatal("revoked token still works")
	}

	for _, bad := range [][]string{
		{"create", "--label", "x"},
		{"create", "--namespace", "a/b"},
		{"revoke"},
		{"list", "--label", "x"},
		{"frobnicate"},
	} {
		var ue *UsageError
		if _, _, err := run(bad...); !errors.As(err, &ue) {
			t.Errorf("cissan token %v: %v, want a usage error", bad, err)
		}
	}
	if _, _, err := run("create", "--namespace", "not-a-namespace", "--label", "x"); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("bad namespace: %v", err)
	}
}
