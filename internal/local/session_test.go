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
// device's session by reusing its client id.
func TestDevicesCannotReachEachOthersSessions(t *testing.T) {
	tn := startNet(t, t.TempDir(), 1)
	tokA := tn.register("dev-a", "acme/lab")
	tokB := tn.register("dev-b", "acme/lab")
	addr := tn.MQTTAddrs()[0]

	a, disc := dialWatched(t, addr, "shared-id", "dev-a", tokA)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ack, err := a.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/dev-a/#", QoS: 1}}})
	if err == nil && (ack == nil || len(ack.Reasons) != 1 || ack.Reasons[0] < 0x80) {
		t.Fatalf("subscription granted: %+v", ack)
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: "shared-id"})
	cack, err := b.Connect(ctx, &paho.Connect{ClientID: "shared-id", Username: "dev-b", UsernameFlag: true,
		Password: []byte(tokB), PasswordFlag: true, KeepAlive: 30, CleanStart: false})
	if err == nil {
		t.Fatalf("dev-b took over dev-a's session id: CONNACK %+v", cack)
	}
	select {
	case code := <-disc:
		t.Fatalf("dev-a was disconnected (0x%02x) by another device's login", code)
	case <-time.After(200 * time.Millisecond):
	}
	publishOKRaw(t, a, "dev-a")
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
