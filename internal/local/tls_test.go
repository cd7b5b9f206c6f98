package local_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/api"
	"cissan/internal/cli"
	"cissan/internal/event"
	"cissan/internal/local"
	"cissan/internal/registry"
	"cissan/internal/tlsconf"
)

// tlsNet is a network serving MQTT over TLS and HTTPS with a test CA.
type tlsNet struct {
	*local.Network
	t     *testing.T
	certs string // the test CA's directory
	https *http.Client
	reg   *registry.Client
}

func mosquittoPub(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto_pub not found: CI must install it (Debian package mosquitto-clients)")
		}
		t.Skip("mosquitto_pub not found; install mosquitto-clients to run this test")
	}
	return bin
}

// startTLSNet starts a network whose hubs serve MQTT over TLS (and plain
// MQTT) and whose API is HTTPS, with client certificates for devices.
func startTLSNet(t *testing.T, hubs int, devices ...string) *tlsNet {
	t.Helper()
	return startTLSNetPlain(t, "127.0.0.1:0", hubs, devices...)
}

// startTLSNetPlain is startTLSNet with the plain MQTT listener at plain
// ("" for none).
func startTLSNetPlain(t *testing.T, plain string, hubs int, devices ...string) *tlsNet {
	t.Helper()
	certs := t.TempDir()
	if _, err := (tlsconf.SelfSigned{Hosts: []string{"127.0.0.1", "localhost"}, Devices: devices}).Write(certs); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := tlsconf.Load(tlsconf.Files{
		Cert: filepath.Join(certs, tlsconf.ServerFile), Key: filepath.Join(certs, tlsconf.ServerKey),
		ClientCA: filepath.Join(certs, tlsconf.CAFile),
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	n, err := local.Start(t.Context(), local.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: plain, MQTTSAddr: "127.0.0.1:0", TLS: srv,
		Hubs: hubs, BlockInterval: blockInterval, ResubmitAfter: 2 * time.Second, Limits: event.DefaultLimits(),
		Analyzers: analyze.Config{Range: analyze.DefaultRangeRules()}, Log: log,
	})
	if err != nil {
		t.Fatalf("start network: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close network: %v", err)
		}
		if t.Failed() {
			t.Logf("network logs:\n%s", logs.String())
		}
	})
	hc, err := tlsconf.HTTPClient(filepath.Join(certs, tlsconf.CAFile), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsNet{Network: n, t: t, certs: certs, https: hc, reg: &registry.Client{BaseURL: n.APIURL, Token: n.Token, HTTP: hc}}
}

func (tn *tlsNet) file(name string) string { return filepath.Join(tn.certs, name) }

// pub runs mosquitto_pub against hub 0's TLS listener with args added,
// publishing one event of device as uid, and returns its output.
func (tn *tlsNet) pub(bin, device, uid string, args ...string) (string, error) {
	_, port, err := net.SplitHostPort(tn.MQTTSAddrs()[0])
	if err != nil {
		tn.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tn.t.Context(), 10*time.Second)
	defer cancel()
	payload := mustJSON(tn.t, seedEvent(uid, device, "acme/plant", 20))
	all := append([]string{"-d", "-V", "mqttv5", "-q", "1", "-h", "127.0.0.1", "-p", port, "-t", topic(device), "-m", string(payload)}, args...)
	out, err := exec.CommandContext(ctx, bin, all...).CombinedOutput()
	return string(out), err
}

// waitFinal polls the HTTPS API until uid is in a final block.
func (tn *tlsNet) waitFinal(uid string) api.EventJSON {
	tn.t.Helper()
	deadline := time.Now().Add(finalDeadline)
	for {
		ev, code := tn.event(uid)
		if code == http.StatusOK && ev.Status == "final" {
			return ev
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("event %s not final after %v: status code %d, status %q", uid, finalDeadline, code, ev.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tn *tlsNet) event(uid string) (api.EventJSON, int) {
	tn.t.Helper()
	req, _ := http.NewRequestWithContext(tn.t.Context(), http.MethodGet, tn.APIURL+"/v1/events/"+url.PathEscape(uid), nil)
	req.Header.Set("Authorization", "Bearer "+tn.Token)
	resp, err := tn.https.Do(req)
	if err != nil {
		tn.t.Fatalf("GET event %s: %v", uid, err)
	}
	defer resp.Body.Close()
	var ev api.EventJSON
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &ev); err != nil {
			tn.t.Fatalf("event %s: %v", uid, err)
		}
	}
	return ev, resp.StatusCode
}

func (tn *tlsNet) register(uid string, requireCert bool) string {
	tn.t.Helper()
	add := tn.reg.Add
	if requireCert {
		add = tn.reg.AddRequiringCert
	}
	d, tok, err := add(tn.t.Context(), "acme/plant", uid)
	if err != nil || d.RequireCert != requireCert {
		tn.t.Fatalf("register %s: %+v, %v", uid, d, err)
	}
	return tok
}

// TestMosquittoOverTLS publishes with the real mosquitto_pub over TLS:
// with a token and --cafile, with a client certificate alone, and checks
// each refusal: a certificate of another CA, a server checked against
// the wrong CA, a certificate naming another device, a device that must
// present a certificate and does not.
func TestMosquittoOverTLS(t *testing.T) {
	bin := mosquittoPub(t)
	tn := startTLSNet(t, 1, "tls-cert", "tls-must")
	tok := tn.register("tls-tok", false)
	certTok := tn.register("tls-cert", false)
	mustTok := tn.register("tls-must", true)
	ca := tn.file(tlsconf.CAFile)
	cert := func(dev string) []string {
		c, k := tlsconf.DeviceFiles(dev)
		return []string{"--cert", tn.file(c), "--key", tn.file(k)}
	}
	ok := func(device, uid string, args ...string) {
		t.Helper()
		out, err := tn.pub(bin, device, uid, args...)
		if err != nil || !strings.Contains(out, "received PUBACK (Mid: 1, RC:0)") {
			t.Fatalf("%s over TLS: %v\n%s", uid, err, out)
		}
		if ev := tn.waitFinal(uid); ev.Event == nil || ev.Event.DeviceUID != device {
			t.Fatalf("%s logged as %+v, want device %q", uid, ev.Event, device)
		}
	}
	refused := func(what, device, uid, want string, args ...string) {
		t.Helper()
		out, err := tn.pub(bin, device, uid, args...)
		said := false // want lists what mosquitto_pub may say, separated by |
		for _, w := range strings.Split(want, "|") {
			said = said || strings.Contains(out, w)
		}
		if err == nil || !said || strings.Contains(out, "CONNACK (0)") {
			t.Fatalf("%s: mosquitto_pub %v, want a failure saying %q\n%s", what, err, want, out)
		}
		if _, code := tn.event(uid); code != http.StatusNotFound {
			t.Fatalf("%s: event %s answers %d, want 404: nothing logged", what, uid, code)
		}
	}

	ok("tls-tok", "tls-token-1", "--cafile", ca, "-u", "tls-tok", "-P", tok)
	ok("tls-cert", "tls-cert-1", append([]string{"--cafile", ca}, cert("tls-cert")...)...)                   // no username, no password
	ok("tls-cert", "tls-cert-2", append([]string{"--cafile", ca, "-u", "tls-cert"}, cert("tls-cert")...)...) // username, no password
	ok("tls-cert", "tls-cert-3", append([]string{"--cafile", ca, "-u", "tls-cert", "-P", certTok}, cert("tls-cert")...)...)
	ok("tls-must", "tls-must-1", append([]string{"--cafile", ca}, cert("tls-must")...)...)

	// A certificate naming another device: 0x87.
	refused("certificate of another device", "tls-tok", "tls-bad-1", "CONNACK (135)",
		append([]string{"--cafile", ca, "-u", "tls-tok", "-P", tok}, cert("tls-cert")...)...)
	// A device that must present a certificate, with its right token only: 0x86.
	refused("token of a device requiring a certificate", "tls-must", "tls-bad-2", "CONNACK (134)",
		"--cafile", ca, "-u", "tls-must", "-P", mustTok)
	// The right token with a wrong password beside a good certificate.
	refused("certificate with a wrong token", "tls-cert", "tls-bad-3", "CONNACK (134)",
		append([]string{"--cafile", ca, "-u", "tls-cert", "-P", tok}, cert("tls-cert")...)...)

	// Another CA: its device certificate ends the handshake (TLS 1.3
	// tells the client with its first read, hence the several messages),
	// and the
	// server's certificate fails the client's check against that CA.
	other := t.TempDir()
	if _, err := (tlsconf.SelfSigned{Hosts: []string{"127.0.0.1"}, Devices: []string{"tls-cert"}}).Write(other); err != nil {
		t.Fatal(err)
	}
	oc, ok2 := tlsconf.DeviceFiles("tls-cert")
	refused("certificate of another CA", "tls-cert", "tls-bad-4", "unknown ca|Protocol error|connection was lost",
		"--cafile", ca, "--cert", filepath.Join(other, oc), "--key", filepath.Join(other, ok2))
	refused("server checked against another CA", "tls-tok", "tls-bad-5", "certificate verify failed",
		"--cafile", filepath.Join(other, tlsconf.CAFile), "-u", "tls-tok", "-P", tok)

	if got := tn.Hubs[0].Stats().Accepted.Load(); got != 5 {
		t.Errorf("hub accepted %d events, want 5", got)
	}
}

// TestHTTPSAPIWithCACert drives the HTTPS API with the client commands:
// --cacert (or CISSAN_CACERT) makes them trust the test CA, and without
// it they refuse the server.
func TestHTTPSAPIWithCACert(t *testing.T) {
	tn := startTLSNet(t, 1)
	if !strings.HasPrefix(tn.APIURL, "https://") {
		t.Fatalf("API at %s, want https", tn.APIURL)
	}
	t.Setenv("CISSAN_TOKEN", tn.Token)
	t.Setenv(tlsconf.CAEnv, "")
	run := func(args ...string) (string, error) {
		var out strings.Builder
		err := cli.Run(t.Context(), args, &out, &out)
		return out.String(), err
	}
	out, err := run("device", "add", "--api", tn.APIURL, "--cacert", tn.file(tlsconf.CAFile), "--namespace", "acme/plant", "--uid", "https-1", "--require-cert")
	if err != nil || !strings.Contains(out, `"require_cert": true`) {
		t.Fatalf("device add over HTTPS: %v\n%s", err, out)
	}
	if out, err := run("device", "show", "--api", tn.APIURL, "https-1"); err == nil || !strings.Contains(out+err.Error(), "certificate") {
		t.Fatalf("device show without --cacert: %v\n%s; want a certificate error", err, out)
	}
	t.Setenv(tlsconf.CAEnv, tn.file(tlsconf.CAFile))
	if out, err := run("device", "show", "--api", tn.APIURL, "https-1"); err != nil || !strings.Contains(out, `"device_uid": "https-1"`) {
		t.Fatalf("device show with CISSAN_CACERT: %v\n%s", err, out)
	}
	// Plain HTTP on the HTTPS port is refused.
	plain := strings.Replace(tn.APIURL, "https://", "http://", 1)
	if resp, err := http.Get(plain + "/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served on the HTTPS address")
		}
	}
}

// TestPlainListenerOff: --mqtt-addr "" leaves each hub with its TLS
// listener only; without TLS it is a clear error, not a hub nobody can
// reach.
func TestPlainListenerOff(t *testing.T) {
	bin := mosquittoPub(t)
	tn := startTLSNetPlain(t, "", 2, "tls-only")
	if plain := tn.MQTTAddrs(); plain[0] != "" || plain[1] != "" {
		t.Fatalf("plain listeners %q, want none", plain)
	}
	secure := tn.MQTTSAddrs()
	if secure[0] == "" || secure[1] == "" || secure[0] == secure[1] {
		t.Fatalf("TLS listeners %q, want one per hub", secure)
	}
	tn.register("tls-only", false)
	c, k := tlsconf.DeviceFiles("tls-only")
	out, err := tn.pub(bin, "tls-only", "tls-only-1", "--cafile", tn.file(tlsconf.CAFile), "--cert", tn.file(c), "--key", tn.file(k))
	if err != nil || !strings.Contains(out, "RC:0") {
		t.Fatalf("publish over TLS: %v\n%s", err, out)
	}
	tn.waitFinal("tls-only-1")

	_, err = local.Start(t.Context(), local.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "", Hubs: 1,
		BlockInterval: blockInterval, Limits: event.DefaultLimits()})
	if err == nil || !strings.Contains(err.Error(), "no MQTT listener") {
		t.Fatalf("a network without any MQTT listener: %v, want a refusal", err)
	}
}

// TestSimulateOverTLS: `cissan simulate --tls --cacert` registers devices
// over HTTPS and publishes over MQTT over TLS.
func TestSimulateOverTLS(t *testing.T) {
	tn := startTLSNet(t, 1)
	t.Setenv("CISSAN_TOKEN", tn.Token)
	var out strings.Builder
	err := cli.Run(t.Context(), []string{"simulate", "--api", tn.APIURL, "--cacert", tn.file(tlsconf.CAFile), "--tls",
		"--mqtt", tn.MQTTSAddrs()[0], "--devices", "2", "--rate", "100", "--count", "6", "--prefix", "simtls"}, &out, &out)
	if err != nil {
		t.Fatalf("simulate over TLS: %v\n%s", err, out.String())
	}
	if got := tn.Hubs[0].Stats().Accepted.Load(); got != 6 {
		t.Fatalf("hub accepted %d events over TLS, want 6\n%s", got, out.String())
	}
}
