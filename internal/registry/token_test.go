package registry

import (
	"encoding/base64"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewOperatorToken()
		if err != nil {
			t.Fatal(err)
		}
		body, ok := strings.CutPrefix(tok, "cso_")
		if !ok {
			t.Fatalf("operator token %q lacks cso_ prefix", tok)
		}
		b, err := base64.RawURLEncoding.DecodeString(body)
		if err != nil || len(b) != 32 {
			t.Fatalf("token body %q: %d bytes, %v", body, len(b), err)
		}
		if seen[tok] {
			t.Fatal("token repeated")
		}
		seen[tok] = true
	}
}

func TestEqualToken(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"cso_abc", "cso_abc", true},
		{"cso_abc", "cso_abd", false},
		{"cso_abc", "cso_ab", false},
		{"", "", false},
		{"cso_abc", "", false},
		{"", "cso_abc", false},
	}
	for _, tt := range tests {
		if got := EqualToken(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualToken(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header, want string
	}{
		{"Bearer cso_x", "cso_x"},
		{"bearer cso_x", "cso_x"},
		{"Bearer  cso_x ", "cso_x"},
		{"Basic dXNlcjpwYXNz", ""},
		{"Bearer", ""},
		{"cso_x", ""},
		{"", ""},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/", nil)
		if tt.header != "" {
			req.Header.Set("Authorization", tt.header)
		}
		if got := BearerToken(req); got != tt.want {
			t.Errorf("BearerToken(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestOperatorAuth(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	if OperatorAuth("")(req) {
		t.Error("empty operator token admitted a request without a header")
	}
	req.Header.Set("Authorization", "Bearer cso_x")
	if !OperatorAuth("cso_x")(req) {
		t.Error("right token refused")
	}
	if OperatorAuth("cso_y")(req) {
		t.Error("wrong token admitted")
	}
}

func TestLoadOrCreateOperatorToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "admin.token")
	tok, err := LoadOrCreateOperatorToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "cso_") {
		t.Errorf("token %q", tok)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := LoadOrCreateOperatorToken(path)
	if err != nil || again != tok {
		t.Errorf("second load = %q, %v; want %q", again, err, tok)
	}
	empty := filepath.Join(t.TempDir(), "empty.token")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := LoadOrCreateOperatorToken(empty); err == nil {
		t.Error("empty token file accepted")
	}
}
