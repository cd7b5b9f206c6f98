package local_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestDevicesCannotReachEachOthersSessions: a device can neither subscribe
// (so no event or Will message ever reaches it) nor take over another
// device's session: its client id must be its own uid (else CONNACK 0x85),
// whether the other device is connected or not yet.
func TestDevicesCannotReachEachOthersSessions(t *testing.T) {
	tn := startNet(t, t.TempDir(), 1)
	tokA := tn.register("dev-a", "acme/lab")
	tokB := tn.register("dev-b", "acme/lab")
	addr := tn.MQTTAddrs()[0]

	// dev-b, first, with dev-a's uid as its client id: refused, and dev-a
	// can still log in.
	if code := connectCode(t, addr, "dev-a", "dev-b", tokB); code != 0x85 {
		t.Fatalf("dev-b with client id dev-a: CONNACK 0x%02x, want 0x85", code)
	}
	a, disc := dialWatched(t, addr, "dev-a", "dev-a", tokA)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ack, err := a.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/dev-a/#", QoS: 1}}})
	if err == nil && (ack == nil || len(ack.Reasons) != 1 || ack.Reasons[0] < 0x80) {
		t.Fatalf("subscription granted: %+v", ack)
	}
	// And while dev-a is connected: refused, dev-a untouched.
	if code := connectCode(t, addr, "dev-a", "dev-b", tokB); code != 0x85 {
		t.Fatalf("dev-b taking over dev-a's session: CONNACK 0x%02x, want 0x85", code)
	}
	select {
	case code := <-disc:
		t.Fatalf("dev-a was disconnected (0x%02x) by another device's login", code)
	case <-time.After(200 * time.Millisecond):
	}
	publishOKRaw(t, a, "dev-a")
	// An empty client id becomes the login.
	c, _ := dialWatched(t, addr, "", "dev-b", tokB)
	publishOKRaw(t, c, "dev-b")
}

// connectCode logs in with paho and returns the CONNACK's reason code.
func connectCode(t *testing.T, addr, clientID, uid, token string) byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: clientID})
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: uid, UsernameFlag: true,
		Password: []byte(token), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
		return 0
	}
	if ack == nil {
		t.Fatalf("connect as %s with client id %q: no CONNACK: %v", uid, clientID, err)
	}
	return ack.ReasonCode
}

// publishOKRaw publishes one good event on a raw paho client.
func publishOKRaw(t *testing.T, c *paho.Client, device string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic(device), Payload: mustJSON(t, seedEvent("raw-1", device, "acme/lab", 20))})
	if err != nil || resp == nil || resp.ReasonCode != 0 {
		t.Fatalf("publish after the refused takeover: %+v, %v", resp, err)
	}
}
