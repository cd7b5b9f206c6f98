package bench

import (
	"crypto/tls"
	"os"
	"path/filepath"

	"cissan/internal/tlsconf"
)

// benchTLS is a throwaway CA and server certificate, so that a run over
// TLS measures what TLS costs the hubs and the broker. Its methods on a
// nil *benchTLS describe a run without TLS.
type benchTLS struct {
	dir    string
	srv    *tlsconf.Server
	client *tls.Config
}

func newBenchTLS() (*benchTLS, error) {
	dir, err := os.MkdirTemp("", "cissan-bench-tls-")
	if err != nil {
		return nil, err
	}
	b := &benchTLS{dir: dir}
	if _, err := (tlsconf.SelfSigned{Hosts: []string{"127.0.0.1"}}).Write(dir); err != nil {
		b.close()
		return nil, err
	}
	if b.srv, err = tlsconf.Load(tlsconf.Files{Cert: filepath.Join(dir, tlsconf.ServerFile), Key: filepath.Join(dir, tlsconf.ServerKey)}, nil); err != nil {
		b.close()
		return nil, err
	}
	pool, err := tlsconf.CAPool("bench CA", filepath.Join(dir, tlsconf.CAFile))
	if err != nil {
		b.close()
		return nil, err
	}
	b.client = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return b, nil
}

func (b *benchTLS) close() { os.RemoveAll(b.dir) }

// server is the hubs' certificate, nil without TLS.
func (b *benchTLS) server() *tlsconf.Server {
	if b == nil {
		return nil
	}
	return b.srv
}

func (b *benchTLS) serverConfig() *tls.Config {
	if b == nil {
		return nil
	}
	return b.srv.Config()
}

func (b *benchTLS) clientConfig() *tls.Config {
	if b == nil {
		return nil
	}
	return b.client
}

// plainAddr is the hubs' plain listener: none with TLS, so every device
// connects over TLS.
func (b *benchTLS) plainAddr() string {
	if b == nil {
		return "127.0.0.1:0"
	}
	return ""
}
