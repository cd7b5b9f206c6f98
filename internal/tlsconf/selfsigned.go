package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DeviceURI is the URI SAN naming a device in a client certificate:
// urn:cissan:device:UID.
func DeviceURI(uid string) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: "cissan:device:" + uid}
}

// SelfSigned is a test CA and the certificates it signed, for one network.
type SelfSigned struct {
	Hosts   []string // DNS names and IP addresses of the server certificate
	Devices []string // device uids, one client certificate each
	Valid   time.Duration
}

// Files written by Write, in dir: ca.pem and ca.key, server.pem and
// server.key, and device-UID.pem and device-UID.key per device.
const (
	CAFile     = "ca.pem"
	CAKeyFile  = "ca.key"
	ServerFile = "server.pem"
	ServerKey  = "server.key"
)

// DeviceFiles names a device's certificate and key files.
func DeviceFiles(uid string) (cert, key string) {
	return "device-" + uid + ".pem", "device-" + uid + ".key"
}

// Write creates dir if needed and writes the CA and every certificate into
// it, ECDSA P-256, keys 0600. It refuses to overwrite a file, and on error
// removes what it wrote. It returns the paths written.
func (s SelfSigned) Write(dir string) (written []string, err error) {
	if len(s.Hosts) == 0 {
		return nil, errors.New("no host for the server certificate")
	}
	if s.Valid <= 0 {
		s.Valid = 365 * 24 * time.Hour
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
			written = nil
		}
	}()
	put := func(name, typ string, der []byte, mode os.FileMode) error {
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("write %w", err)
		}
		written = append(written, p)
		if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		return nil
	}
	now := time.Now().Add(-time.Hour) // tolerate clocks a little behind
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "cissan test CA"},
		NotBefore:             now,
		NotAfter:              now.Add(s.Valid),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, caCert, err := sign(ca, nil, caKey, caKey)
	if err != nil {
		return nil, err
	}
	issue := func(certName, keyName string, tmpl *x509.Certificate) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl.NotBefore, tmpl.NotAfter = now, now.Add(s.Valid)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, _, err := sign(tmpl, caCert, key, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := put(certName, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		return put(keyName, "PRIVATE KEY", keyDER, 0o600)
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	if err := put(CAFile, "CERTIFICATE", caDER, 0o644); err != nil {
		return written, err
	}
	if err := put(CAKeyFile, "PRIVATE KEY", caKeyDER, 0o600); err != nil {
		return written, err
	}
	srv := &x509.Certificate{Subject: pkix.Name{CommonName: s.Hosts[0]}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range s.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			srv.IPAddresses = append(srv.IPAddresses, ip)
		} else {
			srv.DNSNames = append(srv.DNSNames, h)
		}
	}
	if err := issue(ServerFile, ServerKey, srv); err != nil {
		return written, err
	}
	for _, uid := range s.Devices {
		c, k := DeviceFiles(uid)
		dev := &x509.Certificate{
			Subject:     pkix.Name{CommonName: uid},
			URIs:        []*url.URL{DeviceURI(uid)},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if err := issue(c, k, dev); err != nil {
			return written, err
		}
	}
	return written, nil
}

func sign(tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	return der, c, err
}

// DeviceNames returns the device uids a client certificate names: its
// subject's common name, its DNS names, and the UID of each URI
// urn:cissan:device:UID, without repeats.
func DeviceNames(c *x509.Certificate) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	add(c.Subject.CommonName)
	for _, d := range c.DNSNames {
		add(d)
	}
	for _, u := range c.URIs {
		if u.Scheme == "urn" && strings.HasPrefix(u.Opaque, "cissan:device:") {
			add(strings.TrimPrefix(u.Opaque, "cissan:device:"))
		}
	}
	return out
}
