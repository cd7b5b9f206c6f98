package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), args, &out, &out)
	return out.String(), err
}

func TestTLSSelfSignedCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, err := runCmd(t, "tls", "selfsigned", "--out", dir, "--device", "ws-1", "--device", "ws-2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range []string{"ca.pem", "ca.key", "server.pem", "server.key", "device-ws-1.pem", "device-ws-1.key", "device-ws-2.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tls", "selfsigned"}, "--out is required"},
		{[]string{"tls", "selfsigned", "--out", t.TempDir(), "--device", "bad uid/x"}, "--device"},
		{[]string{"tls", "selfsigned", "--out", t.TempDir(), "--host", ","}, "--host names no host"},
		{[]string{"tls"}, "usage: cissan tls selfsigned"},
		{[]string{"tls", "selfsigned", "--out", dir}, "exists"}, // never overwrites
	} {
		out, err := runCmd(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v (%s), want an error saying %q", tc.args, err, out, tc.want)
		}
	}
}

// TestTLSFlagErrors: TLS flags given wrongly stop a role before it starts,
// with a message naming the flag.
func TestTLSFlagErrors(t *testing.T) {
	d := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--data-dir", d, "--mqtts-addr", "127.0.0.1:0"}, "--mqtts-addr needs --tls-cert"},
		{[]string{"up", "--data-dir", d, "--tls-cert", filepath.Join(d, "missing.pem"), "--tls-key", filepath.Join(d, "k")}, "--tls-cert"},
		{[]string{"up", "--data-dir", d, "--tls-key", "k"}, "--tls-key needs --tls-cert"},
		{[]string{"registry", "--data-dir", d, "--http-addr", "127.0.0.1:0", "--tls-client-ca", "ca.pem"}, "--tls-client-ca is for the hubs"},
	} {
		out, err := runCmd(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v (%s), want an error saying %q", tc.args, err, out, tc.want)
		}
	}
}
