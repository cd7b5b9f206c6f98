package local_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"cissan/internal/analyze"
	"cissan/internal/anchor"
	"cissan/internal/api"
	"cissan/internal/cli"
	"cissan/internal/event"
	"cissan/internal/local"
	"cissan/internal/proof"
	"cissan/internal/registry"
	"cissan/internal/sim"
)

const (
	blockInterval = 100 * time.Millisecond
	finalDeadline = 10 * time.Second
)

// testNet is a running one-process network with helpers for talking to
// its HTTP API and MQTT brokers the way an operator and devices would.
type testNet struct {
	*local.Network
	t    *testing.T
	dir  string
	reg  *registry.Client
	logs *syncBuffer // what the network logged
}

// startNet starts a network of hubs hubs on free ports with its stores in
// dir, and closes it when the test ends. Its logs are shown only if the
// test fails.
func startNet(t *testing.T, dir string, hubs int) *testNet {
	t.Helper()
	return startNetAnchored(t, dir, hubs, nil)
}

// startNetAnchored is startNet with the master anchoring on Bitcoin as
// anc says (nil: off).
func startNetAnchored(t *testing.T, dir string, hubs int, anc *anchor.Config) *testNet {
	t.Helper()
	return startNetWith(t, dir, hubs, func(c *local.Config) { c.Anchor = anc })
}

// startNetWith is startNet with the configuration changed by mod.
func startNetWith(t *testing.T, dir string, hubs int, mod func(*local.Config)) *testNet {
	t.Helper()
	logs := &syncBuffer{}
	cfg := local.Config{
		DataDir:       dir,
		HTTPAddr:      "127.0.0.1:0",
		MQTTAddr:      "127.0.0.1:0",
		Hubs:          hubs,
		BlockInterval: blockInterval,
		ResubmitAfter: 2 * time.Second,
		Limits:        event.DefaultLimits(),
		Analyzers:     analyze.Config{Range: analyze.DefaultRangeRules()},
		Log:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := local.Start(t.Context(), cfg)
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
	return &testNet{Network: n, t: t, dir: dir, reg: &registry.Client{BaseURL: n.APIURL, Token: n.Token}, logs: logs}
}

// syncBuffer is a bytes.Buffer safe for the network's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// register adds a device through the registry's HTTP API and returns its token.
func (tn *testNet) register(uid, namespace string) string {
	tn.t.Helper()
	d, tok, err := tn.reg.Add(tn.t.Context(), namespace, uid)
	if err != nil {
		tn.t.Fatalf("register %s: %v", uid, err)
	}
	if d.UID != uid || d.Namespace != namespace || d.Status != registry.StatusActive || tok == "" {
		tn.t.Fatalf("register %s: got device %+v, token %q", uid, d, tok)
	}
	return tok
}

// get fetches path from the API with the operator token, decodes a 200
// answer into out (if not nil) and returns the status code.
func (tn *testNet) get(path string, out any) int {
	tn.t.Helper()
	code, body := tn.fetch(path)
	if code == http.StatusOK && out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			tn.t.Fatalf("GET %s: decode %s: %v", path, body, err)
		}
	}
	return code
}

// fetch GETs path from the API with the operator token.
func (tn *testNet) fetch(path string) (int, []byte) {
	tn.t.Helper()
	req, err := http.NewRequestWithContext(tn.t.Context(), http.MethodGet, tn.APIURL+path, nil)
	if err != nil {
		tn.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tn.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tn.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tn.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// mustGet is get that fails the test on any answer but 200.
func (tn *testNet) mustGet(path string, out any) {
	tn.t.Helper()
	if code := tn.get(path, out); code != http.StatusOK {
		tn.t.Fatalf("GET %s: status %d, want 200", path, code)
	}
}

func (tn *testNet) event(uid string) (api.EventJSON, int) {
	tn.t.Helper()
	var ev api.EventJSON
	code := tn.get("/v1/events/"+url.PathEscape(uid), &ev)
	return ev, code
}

// waitFinal polls the API until the event is in a final block.
func (tn *testNet) waitFinal(uid string) api.EventJSON {
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

func (tn *testNet) block(h uint64) api.BlockJSON {
	tn.t.Helper()
	var b api.BlockJSON
	tn.mustGet(fmt.Sprintf("/v1/blocks/%d", h), &b)
	return b
}

// status returns GET /v1/status with its numbers as json.Number.
func (tn *testNet) status() map[string]any {
	tn.t.Helper()
	req, _ := http.NewRequestWithContext(tn.t.Context(), http.MethodGet, tn.APIURL+"/v1/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tn.t.Fatalf("GET /v1/status: %v", err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		tn.t.Fatalf("GET /v1/status: %v", err)
	}
	return out
}

// eventCount is the "events" count of GET /v1/status.
func (tn *testNet) eventCount() string {
	tn.t.Helper()
	n, ok := tn.status()["events"].(json.Number)
	if !ok {
		tn.t.Fatalf("GET /v1/status has no events count")
	}
	return n.String()
}

// searchDevice returns the uids GET /v1/events?device= lists, once the
// index has reached every stored block.
func (tn *testNet) searchDevice(device string) []string {
	tn.t.Helper()
	tn.waitIndexed()
	var out struct{ Events []api.RowJSON }
	tn.mustGet("/v1/events?limit=1000&device="+url.QueryEscape(device), &out)
	uids := make([]string, len(out.Events))
	for i, r := range out.Events {
		uids[i] = r.UID
	}
	return uids
}

// waitIndexed waits until the master's index reaches its chain's height,
// as GET /v1/status reports them.
func (tn *testNet) waitIndexed() {
	tn.t.Helper()
	deadline := time.Now().Add(finalDeadline)
	for {
		st := tn.status()
		if st["indexed_height"] == st["height"] {
			return
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("index at %v of %v blocks", st["indexed_height"], st["height"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPoolsEmpty waits until no hub and not the master holds an event
// waiting for a block.
func (tn *testNet) waitPoolsEmpty() {
	tn.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sizes := []int{tn.Master.PoolSize()}
		empty := tn.Master.PoolSize() == 0
		for _, h := range tn.Hubs {
			sizes = append(sizes, h.PoolSize())
			empty = empty && h.PoolSize() == 0
		}
		if empty {
			return
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("pools not empty (master, hubs...): %v", sizes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dial logs a simulated device in to hub i.
func (tn *testNet) dial(hub int, uid, namespace, token string) *sim.Device {
	tn.t.Helper()
	d, err := sim.Dial(tn.t.Context(), tn.MQTTAddrs()[hub], uid, namespace, token)
	if err != nil {
		tn.t.Fatalf("dial hub %d as %s: %v", hub, uid, err)
	}
	tn.t.Cleanup(func() { _ = d.Close() })
	return d
}

// publish sends payload to topic and returns the hub's answer.
func publish(t *testing.T, d *sim.Device, topic string, payload []byte) sim.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	r, err := d.Publish(ctx, topic, payload)
	if err != nil && r.Code == 0 {
		t.Fatalf("publish to %s: %v", topic, err)
	}
	return r
}

// publishOK publishes one event of d's and fails unless the hub takes it.
func publishOK(t *testing.T, d *sim.Device, ev map[string]any) {
	t.Helper()
	r := publish(t, d, topic(d.UID), mustJSON(t, ev))
	if r.Code != 0 {
		t.Fatalf("publish %v: PUBACK 0x%02x %q, want 0", ev["uid"], r.Code, r.Reason)
	}
}

func topic(device string) string { return "devices/" + device + "/events" }

// seedEvent is an event in the seed's format.
func seedEvent(uid, device, namespace string, temperature float64) map[string]any {
	return map[string]any{
		"uid":       uid,
		"timestamp": time.Now().UnixMilli(),
		"items": []any{
			map[string]any{"key": "temperature", "value": temperature},
			map[string]any{"key": "humidity", "value": 45.5},
			map[string]any{"key": "door_open", "value": false},
			map[string]any{"key": "samples", "value": []any{1, 2.5, "x"}},
		},
		"namespace":  namespace,
		"device_uid": device,
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tagStrings(tags []api.TagJSON) []string {
	out := make([]string, len(tags))
	for i, tg := range tags {
		out[i] = tg.Analyzer + ":" + tg.Key + ":" + tg.Label
	}
	return out
}

// checkFinalBlock checks that block h lists an accepting validation from
// every hub of the network and is final.
func (tn *testNet) checkFinalBlock(h uint64) {
	tn.t.Helper()
	b := tn.block(h)
	if !b.Final || b.Accepted != len(tn.Net.Hubs) || b.Rejected != 0 {
		tn.t.Errorf("block %d: final %v, accepted %d, rejected %d; want final with %d accepting", h, b.Final, b.Accepted, b.Rejected, len(tn.Net.Hubs))
	}
	byHub := map[string]proof.ValidationJSON{}
	for _, v := range b.Validations {
		byHub[v.HubID] = v
	}
	for _, hub := range tn.Net.Hubs {
		v, ok := byHub[hub.ID]
		switch {
		case !ok:
			tn.t.Errorf("block %d: no validation from %s (validations %+v)", h, hub.ID, b.Validations)
		case v.Verdict != "accept" || v.Height != h || v.BlockHash != b.Hash:
			tn.t.Errorf("block %d: validation from %s is %+v, want accept of %s", h, hub.ID, v, b.Hash)
		}
	}
}

// verify runs `cissan verify proof` on a bundle written to a file.
func (tn *testNet) verify(bundle []byte) (string, error) {
	tn.t.Helper()
	path := filepath.Join(tn.t.TempDir(), "proof.json")
	if err := os.WriteFile(path, bundle, 0o600); err != nil {
		tn.t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := cli.Run(tn.t.Context(), []string{"verify", "proof", "--network", filepath.Join(tn.dir, "network.json"), path}, &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

// checkProof fetches uid's proof, checks that `cissan verify proof`
// accepts it, and that it refuses the bundle with any one byte changed in
// the entry, the header, the master signature or a validation signature.
func (tn *testNet) checkProof(uid string) {
	tn.t.Helper()
	t := tn.t
	// network.json in the data dir is what an offline verifier gets: it
	// must say what the running network is.
	onDisk, err := os.ReadFile(filepath.Join(tn.dir, "network.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tn.Net.MarshalJSON()
	if !bytes.Equal(bytes.TrimSpace(onDisk), bytes.TrimSpace(want)) {
		t.Fatalf("network.json differs from the running network:\n%s\nwant\n%s", onDisk, want)
	}

	var raw json.RawMessage
	tn.mustGet("/v1/events/"+url.PathEscape(uid)+"/proof", &raw)
	out, err := tn.verify(raw)
	if err != nil {
		t.Fatalf("verify proof of %s: %v\n%s", uid, err, out)
	}
	if !strings.Contains(out, "valid, FINAL") || !strings.Contains(out, uid) {
		t.Errorf("verify proof of %s says:\n%s\nwant a valid, FINAL proof naming the event", uid, out)
	}

	b, err := proof.Parse(raw)
	if err != nil {
		t.Fatalf("parse proof: %v", err)
	}
	entry, err := base64.StdEncoding.DecodeString(b.Entry)
	if err != nil {
		t.Fatal(err)
	}
	header := mustHex(t, b.Header)
	sig := mustHex(t, b.MasterSignature)
	if len(b.Validations) == 0 {
		t.Fatal("proof has no validations")
	}
	vsig := mustHex(t, b.Validations[0].Signature)

	type field struct {
		name   string
		bytes  []byte
		set    func(c *proof.Bundle, changed []byte)
		checks []string // the check verify may name
	}
	fields := []field{
		{"entry", entry, func(c *proof.Bundle, x []byte) { c.Entry = base64.StdEncoding.EncodeToString(x) }, []string{"entry", "inclusion"}},
		// The claimed block_hash is updated with the header, so that the
		// header is caught by the signature or its own checks, not only by
		// the mismatch with block_hash.
		{"header", header, func(c *proof.Bundle, x []byte) {
			c.Header = hex.EncodeToString(x)
			c.BlockHash = hex.EncodeToString(sha256Sum(x))
		}, []string{"header", "master signature"}},
		{"header (block_hash kept)", header, func(c *proof.Bundle, x []byte) { c.Header = hex.EncodeToString(x) }, []string{"header", "block hash"}},
		{"master_signature", sig, func(c *proof.Bundle, x []byte) { c.MasterSignature = hex.EncodeToString(x) }, []string{"master signature"}},
		{"validations[0].signature", vsig, func(c *proof.Bundle, x []byte) {
			c.Validations = append([]proof.ValidationJSON(nil), c.Validations...)
			c.Validations[0].Signature = hex.EncodeToString(x)
		}, []string{"validations[0]"}},
	}
	for _, f := range fields {
		for _, pos := range samplePositions(len(f.bytes)) {
			changed := bytes.Clone(f.bytes)
			changed[pos] ^= 0x01
			c := *b
			f.set(&c, changed)
			out, err := tn.verify(mustJSON(t, &c))
			if err == nil {
				t.Errorf("verify accepted the proof with byte %d of %s changed:\n%s", pos, f.name, out)
				continue
			}
			named := false
			for _, check := range f.checks {
				named = named || strings.Contains(err.Error(), check)
			}
			if !named {
				t.Errorf("byte %d of %s changed: verify says %q, want it to name one of %q", pos, f.name, err, f.checks)
			}
		}
	}
}

// samplePositions returns byte positions spread over n bytes: the first
// and last few, and every 7th in between.
func samplePositions(n int) []int {
	var out []int
	for i := 0; i < n; i++ {
		if i < 4 || i >= n-4 || i%7 == 0 {
			out = append(out, i)
		}
	}
	return out
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEndToEndPaho follows an event from an MQTT 5 device to a final block
// and an offline-verified proof.
func TestEndToEndPaho(t *testing.T) {
	tn := startNet(t, t.TempDir(), 2)
	tok := tn.register("sensor-1", "acme/plant")
	d := tn.dial(0, "sensor-1", "acme/plant", tok)

	normal := seedEvent("sensor-1-ev-1", "sensor-1", "acme/plant", 21.5)
	hot := seedEvent("sensor-1-ev-2", "sensor-1", "acme/plant", 120)
	publishOK(t, d, normal)
	publishOK(t, d, hot)

	got := tn.waitFinal("sensor-1-ev-1")
	if got.HubID != "hub-1" || got.Event == nil || got.Event.DeviceUID != "sensor-1" || got.Event.Namespace != "acme/plant" ||
		got.Event.Timestamp != normal["timestamp"] || len(got.Event.Items) != 4 || got.Event.Items[0].Value.Num != 21.5 {
		t.Errorf("GET /v1/events/sensor-1-ev-1 = %+v (event %+v), want the published event received by hub-1", got, got.Event)
	}
	if len(got.Tags) != 0 {
		t.Errorf("event at 21.5 degrees has tags %v, want none", tagStrings(got.Tags))
	}
	if got.Height == nil {
		t.Fatal("final event has no block_height")
	}
	tn.checkFinalBlock(*got.Height)

	gotHot := tn.waitFinal("sensor-1-ev-2")
	if tags := tagStrings(gotHot.Tags); len(tags) != 1 || tags[0] != "range:temperature:out_of_range" {
		t.Errorf("event at 120 degrees has tags %v, want [range:temperature:out_of_range]", tags)
	}
	tn.checkFinalBlock(*gotHot.Height)

	tn.checkProof("sensor-1-ev-1")
}

// TestEndToEndMosquittoPub publishes with the real mosquitto_pub client,
// in MQTT 5 and 3.1.1.
func TestEndToEndMosquittoPub(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto_pub not found: CI must install it (Debian package mosquitto-clients)")
		}
		t.Skip("mosquitto_pub not found; install mosquitto-clients to run this test")
	}
	tn := startNet(t, t.TempDir(), 2)
	tok := tn.register("mq-1", "acme/plant")

	pub := func(hub int, version string, payload []byte) (string, error) {
		_, port, err := net.SplitHostPort(tn.MQTTAddrs()[hub])
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-V", version, "-q", "1", "-h", "127.0.0.1", "-p", port,
			"-u", "mq-1", "-P", tok, "-t", topic("mq-1"), "-m", string(payload))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	for i, version := range []string{"mqttv5", "mqttv311"} {
		uid := "mq-1-" + version
		if out, err := pub(i, version, mustJSON(t, seedEvent(uid, "mq-1", "acme/plant", 20))); err != nil {
			t.Fatalf("mosquitto_pub -V %s: %v\n%s", version, err, out)
		}
		ev := tn.waitFinal(uid)
		if want := local.HubID(i); ev.HubID != want {
			t.Errorf("%s: received by %q, want %q", uid, ev.HubID, want)
		}
		tn.checkFinalBlock(*ev.Height)
		tn.checkProof(uid)
	}

	// A refused event is not taken for success by either protocol:
	// MQTT 5 gets a negative PUBACK, MQTT 3.1.1 a closed connection.
	for _, version := range []string{"mqttv5", "mqttv311"} {
		bad := seedEvent("mq-1-bad-"+version, "mq-1", "acme/plant", 20)
		bad["extra"] = 1
		out, err := pub(0, version, mustJSON(t, bad))
		switch version {
		case "mqttv5":
			// mosquitto_pub exits 0 after a refused publish; it prints the
			// PUBACK's reason code and the hub's reason string.
			if !strings.Contains(out, "Payload format invalid") || !strings.Contains(out, "extra: unknown field") {
				t.Errorf("mosquitto_pub -V mqttv5 of a bad event says %q, want the reason code and 'extra: unknown field'", out)
			}
		case "mqttv311":
			if err == nil || !strings.Contains(out, "connection was lost") {
				t.Errorf("mosquitto_pub -V mqttv311 of a bad event: %v, %q; want a failure: the hub closes the connection", err, out)
			}
		}
		if _, code := tn.event("mq-1-bad-" + version); code != http.StatusNotFound {
			t.Errorf("bad event over %s: GET status %d, want 404", version, code)
		}
	}
}

// dialWatched logs in with a raw paho client, so that the test sees the
// hub's DISCONNECT and the end of the connection.
func dialWatched(t *testing.T, addr, clientID, uid, token string) (*paho.Client, <-chan byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	disc := make(chan byte, 1)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: clientID, OnServerDisconnect: func(d *paho.Disconnect) {
		select {
		case disc <- d.ReasonCode:
		default:
		}
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: uid, UsernameFlag: true, Password: []byte(token), PasswordFlag: true, KeepAlive: 30, CleanStart: true}); err != nil {
		conn.Close()
		t.Fatalf("raw login as %s: %v", uid, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, disc
}

// waitDropped checks that the hub ends a watched connection at once, with
// DISCONNECT reason 0x87 (not authorized).
func waitDropped(t *testing.T, c *paho.Client, disc <-chan byte) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("hub kept the connection open after the registry change")
	}
	select {
	case code := <-disc:
		if code != 0x87 {
			t.Errorf("DISCONNECT reason 0x%02x, want 0x87", code)
		}
	case <-time.After(time.Second):
		t.Error("connection closed without a DISCONNECT packet")
	}
}

// checkLoginFails checks that a device cannot log in to any hub.
func (tn *testNet) checkLoginFails(uid, namespace, token string) {
	tn.t.Helper()
	for i, addr := range tn.MQTTAddrs() {
		d, err := sim.Dial(tn.t.Context(), addr, uid, namespace, token)
		if err == nil {
			d.Close()
			tn.t.Errorf("hub %d let %s log in", i, uid)
			continue
		}
		if !strings.Contains(err.Error(), "0x86") {
			tn.t.Errorf("hub %d: login as %s fails with %q, want CONNACK 0x86 (bad username or password)", i, uid, err)
		}
	}
}

// checkDroppedOnChange connects a device twice (the simulator and a watched
// client), applies a registry change, and checks that both connections
// end at once and that the event published after the change is not taken.
func (tn *testNet) checkDroppedOnChange(uid, namespace, token string, change func() error) {
	tn.t.Helper()
	t := tn.t
	d := tn.dial(0, uid, namespace, token)
	raw, disc := dialWatched(t, tn.MQTTAddrs()[1], uid, uid, token)
	publishOK(t, d, seedEvent(uid+"-before", uid, namespace, 20))
	if err := change(); err != nil {
		t.Fatalf("registry change of %s: %v", uid, err)
	}
	waitDropped(t, raw, disc)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	r, err := d.Publish(ctx, topic(uid), mustJSON(t, seedEvent(uid+"-after", uid, namespace, 20)))
	if err == nil && r.OK() {
		t.Errorf("%s: publish after the registry change got PUBACK 0x%02x, want a failure", uid, r.Code)
	}
}

// TestBadInputsRejected sends every kind of bad input and checks that each
// is refused with a reason naming the fault, and that none is logged.
func TestBadInputsRejected(t *testing.T) {
	tn := startNet(t, t.TempDir(), 2)
	const ns = "acme/plant"
	tokA := tn.register("dev-a", ns)
	tokB := tn.register("dev-b", "acme/other")

	// good counts events that must be logged; bad lists uids that must not.
	good := map[string]bool{}
	var bad []string

	type badCase struct {
		name       string
		uid        string                          // the event's uid, checked to be absent at the end
		topic      string                          // default: dev-a's own
		payload    func() []byte                   // published by dev-a
		run        func(t *testing.T, tn *testNet) // instead of payload: its own checks
		wantCode   byte
		wantReason string
	}
	withA := func(uid string, edit func(ev map[string]any)) func() []byte {
		return func() []byte {
			ev := seedEvent(uid, "dev-a", ns, 20)
			edit(ev)
			return mustJSON(t, ev)
		}
	}
	cases := []badCase{
		{name: "malformed JSON", uid: "bad-malformed",
			payload:  func() []byte { return []byte(`{"uid":"bad-malformed","timestamp":1,"items":[`) },
			wantCode: 0x99, wantReason: "malformed JSON"},
		{name: "missing field", uid: "bad-missing",
			payload:  withA("bad-missing", func(ev map[string]any) { delete(ev, "device_uid") }),
			wantCode: 0x99, wantReason: "device_uid: missing"},
		{name: "extra field", uid: "bad-extra",
			payload:  withA("bad-extra", func(ev map[string]any) { ev["color"] = "red" }),
			wantCode: 0x99, wantReason: "color: unknown field"},
		{name: "timestamp as string", uid: "bad-ts",
			payload:  withA("bad-ts", func(ev map[string]any) { ev["timestamp"] = "1696248400000" }),
			wantCode: 0x99, wantReason: "timestamp: must be an integer"},
		{name: "items not an array", uid: "bad-items",
			payload:  withA("bad-items", func(ev map[string]any) { ev["items"] = map[string]any{"key": "t", "value": 1} }),
			wantCode: 0x99, wantReason: "items: must be an array"},
		{name: "value as object", uid: "bad-value",
			payload: withA("bad-value", func(ev map[string]any) {
				ev["items"] = []any{map[string]any{"key": "t", "value": map[string]any{"c": 1}}}
			}),
			wantCode: 0x99, wantReason: "items[0].value: must be a number"},
		{name: "empty items", uid: "bad-empty",
			payload:  withA("bad-empty", func(ev map[string]any) { ev["items"] = []any{} }),
			wantCode: 0x99, wantReason: "items: must not be empty"},
		{name: "oversized payload", uid: "bad-big",
			payload: withA("bad-big", func(ev map[string]any) {
				items := []any{}
				for i := range 20 {
					items = append(items, map[string]any{"key": fmt.Sprint("k", i), "value": strings.Repeat("x", 4000)})
				}
				ev["items"] = items
			}),
			wantCode: 0x99, wantReason: "at most 65536 allowed"},
		{name: "uid too long", uid: strings.Repeat("u", 129),
			payload:  withA(strings.Repeat("u", 129), func(map[string]any) {}),
			wantCode: 0x99, wantReason: "uid: is 129 bytes, at most 128"},
		{name: "device_uid not the login", uid: "bad-other-dev",
			payload:  withA("bad-other-dev", func(ev map[string]any) { ev["device_uid"] = "dev-b" }),
			wantCode: 0x87, wantReason: `is not the connected device "dev-a"`},
		{name: "namespace not the device's", uid: "bad-ns",
			payload:  withA("bad-ns", func(ev map[string]any) { ev["namespace"] = "acme/other" }),
			wantCode: 0x87, wantReason: `namespace "acme/other" is not device dev-a's`},
		{name: "another device's topic", uid: "bad-topic", topic: topic("dev-b"),
			payload:  func() []byte { return mustJSON(t, seedEvent("bad-topic", "dev-b", "acme/other", 20)) },
			wantCode: 0x87, wantReason: "may publish only to devices/dev-a/events"},
		{name: "unknown device", run: func(t *testing.T, tn *testNet) {
			tn.checkLoginFails("dev-nobody", ns, tokA)
		}},
		{name: "wrong token", run: func(t *testing.T, tn *testNet) {
			tn.checkLoginFails("dev-a", ns, tokB)
			tn.checkLoginFails("dev-a", ns, tokA+"x")
		}},
		{name: "deactivated device", uid: "dev-off-after", run: func(t *testing.T, tn *testNet) {
			tok := tn.register("dev-off", ns)
			tn.checkDroppedOnChange("dev-off", ns, tok, func() error {
				_, err := tn.reg.Deactivate(t.Context(), "dev-off")
				return err
			})
			good["dev-off-before"] = true
			tn.checkLoginFails("dev-off", ns, tok)
		}},
		{name: "revoked device", uid: "dev-rev-after", run: func(t *testing.T, tn *testNet) {
			tok := tn.register("dev-rev", ns)
			tn.checkDroppedOnChange("dev-rev", ns, tok, func() error {
				_, err := tn.reg.Revoke(t.Context(), "dev-rev")
				return err
			})
			good["dev-rev-before"] = true
			tn.checkLoginFails("dev-rev", ns, tok)
		}},
		{name: "repeat uid with other content", run: func(t *testing.T, tn *testNet) {
			tok := tn.register("dev-dup", ns)
			d := tn.dial(1, "dev-dup", ns, tok)
			orig := mustJSON(t, seedEvent("dup-1", "dev-dup", ns, 20))
			other := mustJSON(t, seedEvent("dup-1", "dev-dup", ns, 21))
			for i := range 2 { // the first is the event, the second a retransmit
				if r := publish(t, d, topic("dev-dup"), orig); r.Code != 0 {
					t.Fatalf("publish dup-1 #%d: PUBACK 0x%02x %q, want 0", i+1, r.Code, r.Reason)
				}
			}
			good["dup-1"] = true
			r := publish(t, d, topic("dev-dup"), other)
			if r.Code != 0x83 || !strings.Contains(r.Reason, `"dup-1" is already used`) {
				t.Errorf("other content under dup-1 while pooled: PUBACK 0x%02x %q, want 0x83 naming the uid", r.Code, r.Reason)
			}
			// Once logged, the same holds against the chain.
			ev := tn.waitFinal("dup-1")
			if r := publish(t, d, topic("dev-dup"), orig); r.Code != 0 {
				t.Errorf("retransmit of logged dup-1: PUBACK 0x%02x %q, want 0", r.Code, r.Reason)
			}
			r = publish(t, d, topic("dev-dup"), other)
			if want := fmt.Sprintf("in block %d", *ev.Height); r.Code != 0x83 || !strings.Contains(r.Reason, want) {
				t.Errorf("other content under logged dup-1: PUBACK 0x%02x %q, want 0x83 saying %q", r.Code, r.Reason, want)
			}
			if ev.Event.Items[0].Value.Num != 20 {
				t.Errorf("dup-1 logged with temperature %v, want the first content's 20", ev.Event.Items[0].Value.Num)
			}
		}},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.uid != "" {
				bad = append(bad, c.uid)
			}
			if c.run != nil {
				sub := *tn // helpers fail this subtest, not its parent
				sub.t = t
				c.run(t, &sub)
				return
			}
			d, err := sim.Dial(t.Context(), tn.MQTTAddrs()[0], "dev-a", ns, tokA)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer d.Close()
			to := c.topic
			if to == "" {
				to = topic("dev-a")
			}
			r := publish(t, d, to, c.payload())
			if r.Code != c.wantCode || !strings.Contains(r.Reason, c.wantReason) {
				t.Errorf("PUBACK 0x%02x %q, want 0x%02x with a reason containing %q", r.Code, r.Reason, c.wantCode, c.wantReason)
			}
		})
	}

	// A good event as a barrier: once it is final, every refused event
	// would have been logged too, had it been taken.
	d := tn.dial(0, "dev-a", ns, tokA)
	time.Sleep(3 * blockInterval)
	publishOK(t, d, seedEvent("barrier", "dev-a", ns, 20))
	good["barrier"] = true
	for uid := range good {
		tn.waitFinal(uid)
	}
	tn.waitPoolsEmpty()
	for _, uid := range bad {
		if ev, code := tn.event(uid); code != http.StatusNotFound {
			t.Errorf("refused event %.40s: GET status %d (%q), want 404", uid, code, ev.Status)
		}
	}
	if got, want := tn.eventCount(), fmt.Sprint(len(good)); got != want {
		t.Errorf("GET /v1/status events = %s, want %s (the good events %v)", got, want, good)
	}
	if got := tn.searchDevice("dev-dup"); len(got) != 1 || got[0] != "dup-1" {
		t.Errorf("GET /v1/events?device=dev-dup = %v, want [dup-1] once", got)
	}
	if got := tn.searchDevice("dev-b"); len(got) != 0 {
		t.Errorf("GET /v1/events?device=dev-b = %v, want none: dev-b never published", got)
	}
}

// TestTokenRotationDisconnects checks that rotating a token ends the
// device's live connections and that only the new token logs in.
func TestTokenRotationDisconnects(t *testing.T) {
	tn := startNet(t, t.TempDir(), 2)
	const ns = "acme/plant"
	oldTok := tn.register("rot-1", ns)
	raw, disc := dialWatched(t, tn.MQTTAddrs()[0], "rot-1", "rot-1", oldTok)
	d := tn.dial(1, "rot-1", ns, oldTok)

	_, newTok, err := tn.reg.Rotate(t.Context(), "rot-1")
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if newTok == "" || newTok == oldTok {
		t.Fatalf("rotate gave token %q, want a new one", newTok)
	}
	waitDropped(t, raw, disc)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if r, err := d.Publish(ctx, topic("rot-1"), mustJSON(t, seedEvent("rot-old", "rot-1", ns, 20))); err == nil && r.OK() {
		t.Errorf("publish on the connection made with the old token got PUBACK 0x%02x, want a failure", r.Code)
	}
	tn.checkLoginFails("rot-1", ns, oldTok)

	for i := range tn.Hubs {
		d := tn.dial(i, "rot-1", ns, newTok)
		uid := fmt.Sprintf("rot-new-%d", i)
		publishOK(t, d, seedEvent(uid, "rot-1", ns, 20))
		tn.waitFinal(uid)
		d.Close()
	}
	if _, code := tn.event("rot-old"); code != http.StatusNotFound {
		t.Errorf("event sent after rotation on the old connection: GET status %d, want 404", code)
	}
}

// TestRestartKeepsChain stops a network and starts it again on the same
// data dir: every event is still there and new blocks continue the chain.
func TestRestartKeepsChain(t *testing.T) {
	dir := t.TempDir()
	const ns = "acme/plant"
	tn := startNet(t, dir, 2)
	tok := tn.register("rs-1", ns)
	d := tn.dial(0, "rs-1", ns, tok)
	type logged struct {
		height uint64
		hash   string
	}
	before := map[string]logged{}
	var first []byte // rs-a-0, to retransmit after the restart
	for i := range 6 {
		uid := fmt.Sprintf("rs-a-%d", i)
		payload := mustJSON(t, seedEvent(uid, "rs-1", ns, 20))
		if i == 0 {
			first = payload
		}
		if r := publish(t, d, topic("rs-1"), payload); r.Code != 0 {
			t.Fatalf("publish %s: PUBACK 0x%02x %q", uid, r.Code, r.Reason)
		}
		if i%2 == 1 {
			time.Sleep(2 * blockInterval) // spread events over several blocks
		}
	}
	for uid := range 6 {
		uid := fmt.Sprintf("rs-a-%d", uid)
		ev := tn.waitFinal(uid)
		before[uid] = logged{*ev.Height, ev.BlockHash}
	}
	tn.waitPoolsEmpty()
	netID := tn.Net.ID
	oldHeight := tn.Master.Ledger().Height()
	if oldHeight < 2 {
		t.Fatalf("6 events spread over time made %d blocks, want at least 2", oldHeight)
	}
	d.Close()
	if err := tn.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	tn = startNet(t, dir, 2)
	if tn.Net.ID != netID {
		t.Fatalf("network id changed over restart: %s, was %s", tn.Net.ID, netID)
	}
	if h := tn.Master.Ledger().Height(); h != oldHeight {
		t.Fatalf("height after restart %d, want %d", h, oldHeight)
	}
	for uid, was := range before {
		ev, code := tn.event(uid)
		if code != http.StatusOK || ev.Status != "final" || *ev.Height != was.height || ev.BlockHash != was.hash {
			t.Errorf("%s after restart: status %d %q at %v %s, want final at %d %s", uid, code, ev.Status, ev.Height, ev.BlockHash, was.height, was.hash)
		}
	}
	if got := tn.searchDevice("rs-1"); len(got) != len(before) {
		t.Errorf("search after restart lists %d events, want %d", len(got), len(before))
	}

	d = tn.dial(1, "rs-1", ns, tok) // the registry kept the device and its token
	// A retransmit of an event logged before the restart is not logged again.
	if r := publish(t, d, topic("rs-1"), first); r.Code != 0 {
		t.Errorf("retransmit of rs-a-0 after restart: PUBACK 0x%02x %q, want 0", r.Code, r.Reason)
	}
	for i := range 3 {
		publishOK(t, d, seedEvent(fmt.Sprintf("rs-b-%d", i), "rs-1", ns, 20))
	}
	for i := range 3 {
		ev := tn.waitFinal(fmt.Sprintf("rs-b-%d", i))
		if *ev.Height < oldHeight {
			t.Errorf("new event rs-b-%d in block %d, below the old height %d", i, *ev.Height, oldHeight)
		}
	}
	tn.waitPoolsEmpty()
	height := tn.Master.Ledger().Height()
	if height <= oldHeight {
		t.Fatalf("height %d after new events, want above %d", height, oldHeight)
	}
	prev := strings.Repeat("0", 64)
	for h := range height {
		b := tn.block(h)
		if b.PrevHash != prev {
			t.Errorf("block %d prev_hash %s, want %s (block %d's hash)", h, b.PrevHash, prev, int64(h)-1)
		}
		if b.NetworkID != netID.String() {
			t.Errorf("block %d network %s, want %s", h, b.NetworkID, netID)
		}
		tn.checkFinalBlock(h)
		prev = b.Hash
	}
	if got, want := tn.eventCount(), fmt.Sprint(len(before)+3); got != want {
		t.Errorf("GET /v1/status events = %s, want %s", got, want)
	}
	ev, _ := tn.event("rs-a-0")
	if *ev.Height != before["rs-a-0"].height {
		t.Errorf("rs-a-0 moved to block %d after a retransmit, was in %d", *ev.Height, before["rs-a-0"].height)
	}
	tn.checkProof("rs-b-0")
}
