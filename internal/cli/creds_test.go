package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The registry's operator token is refused on hub and master command
// lines, with a message saying what they use instead, before anything is
// created on disk.
func TestNodesRefuseTheRegistryToken(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tok, []byte("cso_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		run  func(context.Context, Env, []string) error
		args []string
		want string
	}{
		{runHub, []string{"--id", "hub-1", "--network", "n.json", "--amqp-url", "amqp://x", "--registry-token-file", tok}, "hub.key"},
		{runMaster, []string{"--hub", "hub-1=" + strings.Repeat("ab", 32), "--amqp-url", "amqp://x", "--registry-token-file", tok}, "master.key"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		err := c.run(t.Context(), Env{Stdout: io.Discard, Stderr: io.Discard}, append(c.args, "--data-dir", dir))
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--registry-token-file") {
			t.Errorf("%v: %v, want a usage error naming %s", c.args[:2], err, c.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%v: the refused command created %s", c.args[:2], dir)
		}
	}
}

func TestRegistryNeedsAReadableNetworkFile(t *testing.T) {
	err := runRegistry(t.Context(), Env{Stdout: io.Discard, Stderr: io.Discard},
		[]string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--network", filepath.Join(t.TempDir(), "missing.json")})
	if err == nil || !strings.Contains(err.Error(), "--network") {
		t.Fatalf("registry with a missing --network file: %v", err)
	}
}
