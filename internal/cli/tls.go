package cli

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"cissan/internal/event"
	"cissan/internal/tlsconf"
)

// DefaultMQTTSAddr is the first hub's MQTT over TLS address when a
// certificate is given without --mqtts-addr: loopback, as the plain
// listener's default, on MQTT's conventional TLS port.
const DefaultMQTTSAddr = "127.0.0.1:8883"

// serveTLS are a server role's TLS flags.
type serveTLS struct {
	files *tlsconf.Flags
	mqtts *string // nil for roles without MQTT
}

// addServeTLSFlags defines --tls-cert, --tls-key, --tls-client-ca and,
// for roles with hubs, --mqtts-addr.
func addServeTLSFlags(fs *flag.FlagSet, mqtt bool) *serveTLS {
	what := "--http-addr"
	if mqtt {
		what = "MQTT (--mqtts-addr) and " + what
	}
	t := &serveTLS{files: tlsconf.AddFlags(fs, what)}
	if mqtt {
		t.mqtts = fs.String("mqtts-addr", "", "MQTT over TLS address (with --tls-cert; default "+DefaultMQTTSAddr+"); with several hubs, further hubs take the next ports")
	}
	return t
}

// load reads the certificate (nil when TLS is off) and reloads it on every
// SIGHUP until ctx ends.
func (t *serveTLS) load(ctx context.Context, log *slog.Logger) (*tlsconf.Server, error) {
	if t.mqtts == nil && t.files.ClientCA != "" {
		return nil, usagef("--tls-client-ca is for the hubs' MQTT listeners; this role serves HTTPS only")
	}
	srv, err := t.files.Load(log)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if srv == nil {
		if t.mqtts != nil && *t.mqtts != "" {
			return nil, usagef("--mqtts-addr needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	srv.WatchSIGHUP(ctx, nil)
	return srv, nil
}

// mqttsAddr is --mqtts-addr, or its default when TLS is on.
func (t *serveTLS) mqttsAddr() string {
	if t.mqtts == nil || !t.files.Enabled() {
		return ""
	}
	if *t.mqtts == "" {
		return DefaultMQTTSAddr
	}
	return *t.mqtts
}

// describeMQTT lists the hubs' listeners for the startup banner.
func describeMQTT(plain, secure []string) string {
	var out []string
	for i := range plain {
		var ls []string
		if plain[i] != "" {
			ls = append(ls, "mqtt://"+plain[i])
		}
		if i < len(secure) && secure[i] != "" {
			ls = append(ls, "mqtts://"+secure[i])
		}
		out = append(out, strings.Join(ls, " "))
	}
	return strings.Join(out, ", ")
}

// apiClient is the HTTP client of commands that call an API: --cacert
// (or CISSAN_CACERT) names a private CA for an API served over HTTPS.
func apiClient(cacert string) (*http.Client, error) {
	c, err := tlsconf.HTTPClient(cacert, 30*time.Second)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return c, nil
}

const cacertUsage = "PEM CA certificate(s) that sign an https:// API's certificate (default: the system's; CISSAN_CACERT)"

// runTLS runs `cissan tls selfsigned`.
func runTLS(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] != "selfsigned" {
		return usagef("usage: cissan tls selfsigned --out DIR [--host 127.0.0.1,localhost] [--device UID ...]")
	}
	fs := flag.NewFlagSet("tls selfsigned", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write ca.pem, ca.key, server.pem, server.key and device-UID.pem/.key into (required)")
	hosts := fs.String("host", "127.0.0.1,localhost", "comma-separated DNS names and IP addresses the server certificate is valid for")
	valid := fs.Duration("valid", 365*24*time.Hour, "validity of every certificate")
	var devices stringList
	fs.Var(&devices, "device", "device uid to issue a client certificate for (repeatable)")
	pos, err := parseFlags(fs, env, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("tls selfsigned: unexpected arguments %q", pos)
	}
	if *out == "" {
		return usagef("tls selfsigned: --out is required")
	}
	s := tlsconf.SelfSigned{Valid: *valid}
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			s.Hosts = append(s.Hosts, h)
		}
	}
	if len(s.Hosts) == 0 {
		return usagef("tls selfsigned: --host names no host")
	}
	for _, d := range devices {
		if err := event.CheckDeviceUID(d); err != nil {
			return usagef("tls selfsigned: --device %q: %v", d, err)
		}
	}
	s.Devices = devices
	written, err := s.Write(*out)
	if err != nil {
		return fmt.Errorf("tls selfsigned: %w", err)
	}
	for _, p := range written {
		fmt.Fprintln(env.Stdout, p)
	}
	fmt.Fprintln(env.Stderr, "A test CA: keep ca.key private, and use a real CA in production.")
	return nil
}

// stringList collects a repeated string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// httpsListener wraps ln in TLS when srvTLS is set.
func httpsListener(ln net.Listener, srvTLS *tlsconf.Server) net.Listener {
	if srvTLS == nil {
		return ln
	}
	return tls.NewListener(ln, srvTLS.HTTPS())
}

// httpScheme is the scheme of an API served with srvTLS.
func httpScheme(srvTLS *tlsconf.Server) string {
	if srvTLS == nil {
		return "http"
	}
	return "https"
}

// clientTLS is the TLS configuration of an MQTT client: the CA of --cacert
// (or CISSAN_CACERT), else the system's.
func clientTLS(cacert string) (*tls.Config, error) {
	flag := "--cacert"
	if cacert == "" {
		cacert, flag = os.Getenv(tlsconf.CAEnv), tlsconf.CAEnv
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		pool, err := tlsconf.CAPool(flag, cacert)
		if err != nil {
			return nil, usagef("%v", err)
		}
		c.RootCAs = pool
	}
	return c, nil
}
