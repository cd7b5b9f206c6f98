package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"cissan/internal/registry"
	"cissan/internal/tlsconf"
)

// Device login by client certificate (listeners with --tls-client-ca).
//
// The TLS handshake verifies the certificate against the client CA; the
// hub then reads the device uids it names (tlsconf.DeviceNames: the
// subject CN, DNS SANs, URI SANs urn:cissan:device:UID). The rule:
//
//   - A verified certificate naming uid U lets a client log in as U: its
//     username must be U or empty. A password, when sent, must also be U's
//     token; without one the certificate alone authenticates, and the
//     registry only says whether U is active.
//   - A certificate that does not name the username is refused with CONNACK
//     0x87 (Not authorized): the certificate is genuine, it just does not
//     authorize that device, and 0x86 would wrongly blame the password.
//   - A device registered with require_cert logging in without such a
//     certificate is refused as a bad login (0x86), like a wrong token:
//     its token alone is not a credential.
//   - A certificate from another CA ends the TLS handshake; the client gets
//     no CONNACK at all.
//   - Without a certificate, a device logs in with its token, as on a plain
//     listener.

// errCertRequired is the refusal of a token login by a device that must
// log in with a client certificate.
var errCertRequired = errors.New("device requires a client certificate")

// deviceGetter is what a certificate login without a token needs from the
// registry: the device's record.
type deviceGetter interface {
	Get(ctx context.Context, uid string) (registry.Device, error)
}

// peerCert returns the client's verified certificate, or nil when it
// presented none (or the listener is plain).
func peerCert(cl *mqtt.Client) *x509.Certificate {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	return st.VerifiedChains[0][0]
}

// credentials decides which device a connecting client logs in as and how
// the registry checks it (see the rule above).
func (h *Hub) credentials(cl *mqtt.Client, username, token string) (string, func(context.Context) (registry.Device, error)) {
	cert := peerCert(cl)
	if cert == nil {
		return username, func(ctx context.Context) (registry.Device, error) {
			d, err := h.cfg.Registry.Authenticate(ctx, username, token)
			if err == nil && d.RequireCert {
				return registry.Device{}, errCertRequired
			}
			return d, err
		}
	}
	names := tlsconf.DeviceNames(cert)
	uid := username
	if uid == "" && len(names) == 1 {
		uid = names[0]
	}
	return uid, func(ctx context.Context) (registry.Device, error) {
		switch {
		case uid == "":
			return registry.Device{}, fmt.Errorf("client certificate names %d devices %q: give the username", len(names), names)
		case !slices.Contains(names, uid):
			return registry.Device{}, fmt.Errorf("client certificate names %q, not %q", names, uid)
		case token != "":
			return h.cfg.Registry.Authenticate(ctx, uid, token)
		}
		g, ok := h.cfg.Registry.(deviceGetter)
		if !ok {
			return registry.Device{}, errors.New("this hub's registry cannot admit a device by certificate alone: send the token as password too")
		}
		d, err := g.Get(ctx, uid)
		if err != nil {
			return registry.Device{}, err
		}
		switch d.Status {
		case registry.StatusActive:
			return d, nil
		case registry.StatusInactive:
			return registry.Device{}, registry.ErrInactive
		default:
			return registry.Device{}, registry.ErrRevoked
		}
	}
}

// certHook refuses, before the login, a client whose verified certificate
// does not name the device it logs in as: CONNACK 0x87.
type certHook struct {
	mqtt.HookBase
	h *Hub
	s *mqtt.Server
}

func (k *certHook) ID() string { return "cissan-client-cert" }

func (k *certHook) Provides(b byte) bool { return b == mqtt.OnConnect }

func (k *certHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	cert := peerCert(cl)
	if cert == nil {
		return nil
	}
	username := string(pk.Connect.Username)
	if names := tlsconf.DeviceNames(cert); username != "" && !slices.Contains(names, username) {
		k.h.log.Info("device login refused: client certificate names another device", "device", username, "certificate_names", names, "remote", cl.Net.Remote)
		_ = k.s.SendConnack(cl, packets.ErrNotAuthorized, false, nil)
		return packets.ErrNotAuthorized
	}
	return nil
}

// tcpConn returns the TCP connection under a client's connection, TLS or
// not.
func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	return tc, ok
}
