package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

// CAEnv names the environment variable client commands read a private CA
// from when --cacert is not given.
const CAEnv = "CISSAN_CACERT"

// CAPool reads a PEM bundle of CA certificates; flag names it in errors.
func CAPool(flag, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", flag, file)
	}
	return pool, nil
}

// HTTPClient returns a client for an API served over HTTPS by a private CA
// (cafile, or $CISSAN_CACERT when cafile is empty); with neither, the
// system's roots verify the server as usual.
func HTTPClient(cafile string, timeout time.Duration) (*http.Client, error) {
	flag := "--cacert"
	if cafile == "" {
		cafile, flag = os.Getenv(CAEnv), CAEnv
	}
	return HTTPClientCA(flag, cafile, timeout)
}

// HTTPClientCA is HTTPClient for the CA file of a named flag, without the
// environment's fallback.
func HTTPClientCA(flag, cafile string, timeout time.Duration) (*http.Client, error) {
	if cafile == "" {
		return &http.Client{Timeout: timeout}, nil
	}
	pool, err := CAPool(flag, cafile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &http.Client{Timeout: timeout, Transport: tr}, nil
}
