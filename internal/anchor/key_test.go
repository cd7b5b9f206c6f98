package anchor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cissan/internal/bitcoin"
)

func TestLoadKey(t *testing.T) {
	regtest, _ := bitcoin.Params("regtest")
	mainnet, _ := bitcoin.Params("mainnet")
	path := filepath.Join(t.TempDir(), "anchor.key")

	k, created, err := LoadKey(path, regtest)
	if err != nil || !created {
		t.Fatalf("first load: created %v, err %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (err %v), want 0600", st.Mode().Perm(), err)
	}
	if !strings.HasPrefix(k.Address.String(), "bcrt1q") {
		t.Fatalf("address %s, want a regtest P2WPKH address", k.Address)
	}
	again, created, err := LoadKey(path, regtest)
	if err != nil || created || again.Address.String() != k.Address.String() {
		t.Fatalf("second load: %v, created %v, address %v; want the same key", err, created, again)
	}

	for name, c := range map[string]struct {
		prep func() string
		want string
	}{
		"readable by others": {func() string {
			p := filepath.Join(t.TempDir(), "k")
			raw, _ := os.ReadFile(path)
			_ = os.WriteFile(p, raw, 0o644)
			return p
		}, "chmod 600"},
		"not WIF": {func() string {
			p := filepath.Join(t.TempDir(), "k")
			_ = os.WriteFile(p, []byte("not a key\n"), 0o600)
			return p
		}, "not a WIF"},
	} {
		if _, _, err := LoadKey(c.prep(), regtest); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one mentioning %q", name, err, c.want)
		}
	}
	if _, _, err := LoadKey(path, mainnet); err == nil || !strings.Contains(err.Error(), "not for the mainnet network") {
		t.Errorf("a regtest key on mainnet: err %v", err)
	}
}
