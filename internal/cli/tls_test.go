package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cissan/internal/tlsconf"
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

// TestUpReloadsCertificateOnSIGHUP runs `cissan up` with a certificate,
// replaces the files, sends the process SIGHUP, and checks that a new
// HTTPS handshake sees the new certificate.
func TestUpReloadsCertificateOnSIGHUP(t *testing.T) {
	a, b, dir := t.TempDir(), t.TempDir(), t.TempDir()
	for i, d := range []string{a, b} {
		if _, err := (tlsconf.SelfSigned{Hosts: []string{"127.0.0.1", fmt.Sprintf("gen-%d.example", i)}}).Write(d); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	put := func(from string) {
		for src, dst := range map[string]string{tlsconf.ServerFile: cert, tlsconf.ServerKey: key} {
			data, err := os.ReadFile(filepath.Join(from, src))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst+".new", data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".new", dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(a)

	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"up", "--data-dir", t.TempDir(), "--hubs", "1", "--http-addr", "127.0.0.1:0",
			"--mqtt-addr", "127.0.0.1:0", "--mqtts-addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--log-level", "error"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("up: %v", err)
		}
	}()
	var apiURL string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "API" {
			apiURL = f[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !strings.HasPrefix(apiURL, "https://") {
		t.Fatalf("up printed API %q, want an https URL", apiURL)
	}
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", strings.TrimPrefix(apiURL, "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return strings.Join(c.ConnectionState().PeerCertificates[0].DNSNames, ",")
	}
	if got := served(); got != "gen-0.example" {
		t.Fatalf("served %q, want gen-0.example", got)
	}
	put(b)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The reload runs on the signal's own goroutine: poll the handshake.
	deadline := time.Now().Add(10 * time.Second)
	for served() != "gen-1.example" {
		if time.Now().After(deadline) {
			t.Fatalf("still serving %q 10 s after SIGHUP", served())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
