package tlsconf_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"cissan/internal/tlsconf"
)

// selfSigned writes a test CA and certificates into a new directory.
func selfSigned(t *testing.T, hosts []string, devices ...string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := (tlsconf.SelfSigned{Hosts: hosts, Devices: devices}).Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// served starts a TLS server of s on a free port and returns a function
// that handshakes with it and returns the certificate it presented.
func served(t *testing.T, s *tlsconf.Server) func() *x509.Certificate {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
}

// TestReloadServesNewCertificate replaces the certificate files under a
// running server: after Reload, a new handshake sees the new certificate;
// a reload of broken files fails, names the file, and keeps the old one.
func TestReloadServesNewCertificate(t *testing.T) {
	a, b := selfSigned(t, []string{"a.example"}), selfSigned(t, []string{"b.example"})
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	copyFile(t, filepath.Join(a, tlsconf.ServerFile), cert)
	copyFile(t, filepath.Join(a, tlsconf.ServerKey), key)
	s, err := tlsconf.Load(tlsconf.Files{Cert: cert, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	handshake := served(t, s)
	if got := handshake().Subject.CommonName; got != "a.example" {
		t.Fatalf("served %q, want a.example", got)
	}

	copyFile(t, filepath.Join(b, tlsconf.ServerFile), cert)
	copyFile(t, filepath.Join(b, tlsconf.ServerKey), key)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := handshake().Subject.CommonName; got != "b.example" {
		t.Fatalf("after reload served %q, want b.example", got)
	}

	// A renewal half done: the new certificate with the old key.
	copyFile(t, filepath.Join(a, tlsconf.ServerFile), cert)
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), cert) || !strings.Contains(err.Error(), key) {
		t.Fatalf("reload of a mismatched pair: %v, want an error naming %s and %s", err, cert, key)
	}
	if got := handshake().Subject.CommonName; got != "b.example" {
		t.Fatalf("after a failed reload served %q, want b.example still", got)
	}
}

// TestSIGHUPReloads checks the signal handler is wired: a SIGHUP to the
// process reloads the files.
func TestSIGHUPReloads(t *testing.T) {
	a, b := selfSigned(t, []string{"a.example"}), selfSigned(t, []string{"b.example"})
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	copyFile(t, filepath.Join(a, tlsconf.ServerFile), cert)
	copyFile(t, filepath.Join(a, tlsconf.ServerKey), key)
	s, err := tlsconf.Load(tlsconf.Files{Cert: cert, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	handshake := served(t, s)
	reloaded := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s.WatchSIGHUP(ctx, func(err error) { reloaded <- err })

	copyFile(t, filepath.Join(b, tlsconf.ServerFile), cert)
	copyFile(t, filepath.Join(b, tlsconf.ServerKey), key)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload 10 s after SIGHUP")
	}
	if got := handshake().Subject.CommonName; got != "b.example" {
		t.Fatalf("after SIGHUP served %q, want b.example", got)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	d := selfSigned(t, []string{"127.0.0.1"})
	other := selfSigned(t, []string{"127.0.0.1"})
	missing := filepath.Join(t.TempDir(), "nope.pem")
	notPEM := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(notPEM, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, key := filepath.Join(d, tlsconf.ServerFile), filepath.Join(d, tlsconf.ServerKey)
	for _, tc := range []struct {
		name  string
		flags tlsconf.Flags
		want  []string
	}{
		{"missing cert", tlsconf.Flags{Cert: missing, Key: key}, []string{"--tls-cert", missing}},
		{"missing key", tlsconf.Flags{Cert: srv, Key: missing}, []string{"--tls-key", missing}},
		{"mismatched", tlsconf.Flags{Cert: srv, Key: filepath.Join(other, tlsconf.ServerKey)}, []string{srv, "does not match"}},
		{"bad client CA", tlsconf.Flags{Cert: srv, Key: key, ClientCA: notPEM}, []string{"--tls-client-ca", notPEM}},
		{"cert without key", tlsconf.Flags{Cert: srv}, []string{"--tls-cert needs --tls-key"}},
		{"client CA alone", tlsconf.Flags{ClientCA: srv}, []string{"--tls-client-ca needs"}},
	} {
		s, err := tc.flags.Load(nil)
		if err == nil {
			t.Errorf("%s: loaded", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
		if s != nil {
			t.Errorf("%s: a server beside the error", tc.name)
		}
	}
	if s, err := (&tlsconf.Flags{}).Load(nil); s != nil || err != nil {
		t.Errorf("no flags: %v, %v; want TLS off", s, err)
	}
}

// TestSelfSigned checks the files, their modes, that the certificates
// chain to the CA with the right usages and names, and that an existing
// file is never overwritten.
func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	written, err := tlsconf.SelfSigned{Hosts: []string{"127.0.0.1", "localhost"}, Devices: []string{"ws-1"}}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 6 {
		t.Fatalf("wrote %v, want 6 files", written)
	}
	for _, p := range written {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, ".key") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	pool, err := tlsconf.CAPool("ca", filepath.Join(dir, tlsconf.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	load := func(name string) *x509.Certificate {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return pair.Leaf
	}
	srv := load("server")
	if _, err := srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("server certificate for localhost: %v", err)
	}
	if err := srv.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("server certificate for 127.0.0.1: %v", err)
	}
	dev := load("device-ws-1")
	if _, err := dev.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("device certificate as a client: %v", err)
	}
	if names := tlsconf.DeviceNames(dev); !slices.Equal(names, []string{"ws-1"}) {
		t.Errorf("device certificate names %q, want [ws-1]", names)
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the server certificate verifies as a client certificate")
	}

	before, _ := os.ReadFile(filepath.Join(dir, tlsconf.CAFile))
	if _, err := (tlsconf.SelfSigned{Hosts: []string{"x"}}).Write(dir); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second write into the same directory: %v, want a refusal to overwrite", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, tlsconf.CAFile))
	if string(before) != string(after) {
		t.Fatal("a refused write changed ca.pem")
	}
}

// TestClientCAOptional: with a client CA, a client without a certificate
// still completes the handshake, and one with a certificate of another CA
// does not.
func TestClientCAOptional(t *testing.T) {
	d := selfSigned(t, []string{"127.0.0.1"})
	other := selfSigned(t, []string{"127.0.0.1"}, "dev-x")
	s, err := tlsconf.Load(tlsconf.Files{
		Cert: filepath.Join(d, tlsconf.ServerFile), Key: filepath.Join(d, tlsconf.ServerKey), ClientCA: filepath.Join(d, tlsconf.CAFile),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("ok"))
				}
				c.Close()
			}()
		}
	}()
	pool, _ := tlsconf.CAPool("ca", filepath.Join(d, tlsconf.CAFile))
	dial := func(certs ...tls.Certificate) error {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, Certificates: certs})
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 2)
		_, err = c.Read(buf) // TLS 1.3: the server's verdict arrives with the first read
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("client without a certificate: %v", err)
	}
	foreign, err := tls.LoadX509KeyPair(filepath.Join(other, "device-dev-x.pem"), filepath.Join(other, "device-dev-x.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(foreign); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
}
