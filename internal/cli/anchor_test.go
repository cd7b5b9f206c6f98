package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnchorFlagsRefused: every bad anchoring flag is a usage error that
// names it, on up and master alike, and nothing is created.
func TestAnchorFlagsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bitcoin-rpc", "http://u:p@127.0.0.1:1", "--bitcoin-network", "moon"}, "--bitcoin-network"},
		{[]string{"--bitcoin-rpc", "ftp://127.0.0.1:1"}, "--bitcoin-rpc"},
		{[]string{"--bitcoin-rpc", "http://127.0.0.1:1", "--anchor-confirmations", "0"}, "--anchor-confirmations"},
		{[]string{"--bitcoin-rpc", "http://127.0.0.1:1", "--anchor-fee-rate", "0"}, "--anchor-fee-rate"},
		{[]string{"--bitcoin-rpc", "http://127.0.0.1:1", "--anchor-fee-rate", "50", "--anchor-max-fee-rate", "10"}, "--anchor-fee-rate"},
		{[]string{"--bitcoin-rpc", "http://127.0.0.1:1", "--anchor-interval", "10ms"}, "--anchor-interval"},
	} {
		for _, cmd := range [][]string{
			{"up", "--data-dir", dir},
			{"master", "--data-dir", dir, "--amqp-url", "amqp://127.0.0.1:1/", "--hub", "hub-1=" + strings.Repeat("ab", 32)},
		} {
			var out, errOut bytes.Buffer
			err := Run(context.Background(), append(cmd, c.args...), &out, &errOut)
			var ue *UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %v: err %v, want a usage error naming %s", cmd[0], c.args, err, c.want)
			}
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused command line created %s", dir)
	}
}
