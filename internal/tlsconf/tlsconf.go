// Package tlsconf serves a TLS certificate read from files, reloadable
// without a restart, for the MQTT and HTTPS listeners of every role.
//
// The certificate is served through tls.Config.GetCertificate, so a reload
// (on SIGHUP, see WatchSIGHUP) takes effect at the next handshake while
// connections already open keep theirs. A reload that fails keeps the
// certificate in use and says why: a renewal half written by a deployment
// tool never takes a listener down.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

// Flags are a server's TLS settings as flags: --tls-cert, --tls-key and
// --tls-client-ca.
type Flags struct {
	Cert, Key, ClientCA string
}

// AddFlags defines --tls-cert, --tls-key and --tls-client-ca on fs; what
// names the listeners they secure (e.g. "MQTT and HTTP").
func AddFlags(fs *flag.FlagSet, what string) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Cert, "tls-cert", "", "PEM certificate (chain) for "+what+" over TLS, with --tls-key; reloaded on SIGHUP")
	fs.StringVar(&f.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.ClientCA, "tls-client-ca", "", "PEM CA certificates whose client certificates authenticate devices (mTLS; optional)")
	return f
}

// Enabled reports whether a certificate was given.
func (f *Flags) Enabled() bool { return f.Cert != "" || f.Key != "" }

// Load reads the files the flags name; it returns nil, nil when TLS is
// off. Errors name the flag and the file.
func (f *Flags) Load(log *slog.Logger) (*Server, error) {
	switch {
	case f.Cert == "" && f.Key == "" && f.ClientCA != "":
		return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	case f.Cert == "" && f.Key == "":
		return nil, nil
	case f.Cert == "":
		return nil, errors.New("--tls-key needs --tls-cert")
	case f.Key == "":
		return nil, errors.New("--tls-cert needs --tls-key")
	}
	return Load(*f, log)
}

// Server holds the certificate a server presents and, with mTLS, the pool
// of CAs its clients' certificates must chain to.
type Server struct {
	files Files
	log   *slog.Logger
	mu    sync.Mutex // serialises reloads
	cert  atomic.Pointer[tls.Certificate]
	cas   atomic.Pointer[x509.CertPool] // nil without --tls-client-ca
}

// Files names the PEM files of a Server.
type Files = Flags

// Load reads the certificate, its key and the optional client CA.
func Load(f Files, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{files: f, log: log}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) load() error {
	cert, err := loadPair(s.files.Cert, s.files.Key)
	if err != nil {
		return err
	}
	var pool *x509.CertPool
	if s.files.ClientCA != "" {
		if pool, err = loadPool(s.files.ClientCA); err != nil {
			return err
		}
	}
	s.cert.Store(cert)
	s.cas.Store(pool)
	return nil
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

// loadPool reads the client CA bundle.
func loadPool(file string) (*x509.CertPool, error) {
	return CAPool("--tls-client-ca", file)
}

// Reload reads the files again. On error the server keeps presenting the
// certificate it had, and the error says which file is wrong.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		s.log.Error("TLS certificate not reloaded; the previous one stays in use", "err", err)
		return err
	}
	if leaf := s.cert.Load().Leaf; leaf != nil {
		s.log.Info("TLS certificate reloaded", "cert", s.files.Cert, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}
	return nil
}

// Config returns a server configuration (TLS 1.2 at least) that presents
// the current certificate at every handshake. With a client CA, a client
// may present a certificate, and one that does not chain to the CA ends
// the handshake; a client without one still connects (it logs in with a
// token).
func (s *Server) Config() *tls.Config {
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
	if s.files.ClientCA == "" {
		return base
	}
	base.ClientAuth = tls.VerifyClientCertIfGiven
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = s.cas.Load()
		return c, nil
	}
	return base
}

// WatchSIGHUP reloads the files on every SIGHUP until ctx ends. Each
// reload is reported to done, when not nil (tests wait on it).
func (s *Server) WatchSIGHUP(ctx context.Context, done func(error)) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				err := s.Reload()
				if done != nil {
					done(err)
				}
			}
		}
	}()
}

// HTTPS returns the configuration of an HTTPS listener: HTTP/2 and
// HTTP/1.1, and no client certificates (an API authenticates bearer
// tokens; asking browsers for a certificate would only prompt them).
func (s *Server) HTTPS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
}

// MQTT returns Config for an MQTT listener, or nil for a nil Server, so
// a role can pass it whether TLS is on or not.
func (s *Server) MQTT() *tls.Config {
	if s == nil {
		return nil
	}
	return s.Config()
}
