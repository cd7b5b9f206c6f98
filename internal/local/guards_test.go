package local_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cissan/internal/local"
	"cissan/internal/registry"
)

// MQTT 5 says a broker that advertised Maximum QoS 1 and Retain Available
// 0 answers a QoS 2 PUBLISH with DISCONNECT 0x9B and a retained one with
// 0x9A; neither event is logged, and the device can connect again.
func TestQoS2AndRetainedPublishesEndTheConnection(t *testing.T) {
	tn := startNet(t, t.TempDir(), 1)
	tok := tn.register("dev-q", "acme/lab")
	for _, c := range []struct {
		name   string
		qos    byte
		retain bool
		code   byte
	}{{"QoS 2", 2, false, 0x9B}, {"retained", 1, true, 0x9A}} {
		raw := dialRaw(t, tn.MQTTAddrs()[0])
		if code := raw.login("dev-q", "dev-q", tok); code != 0 {
			t.Fatalf("login: CONNACK 0x%02x", code)
		}
		uid := "q-" + strings.ReplaceAll(c.name, " ", "")
		raw.send(publishPacket(topic("dev-q"), 1, c.qos, c.retain, mustJSON(t, seedEvent(uid, "dev-q", "acme/lab", 20))))
		if code, err := raw.disconnectCode(); err != nil || code != c.code {
			t.Fatalf("%s PUBLISH: DISCONNECT 0x%02x, %v; want 0x%02x", c.name, code, err, c.code)
		}
		if ev, code := tn.event(uid); code != 404 {
			t.Fatalf("%s PUBLISH: the event is %d %+v, want nowhere", c.name, code, ev)
		}
	}
	publishOK(t, tn.dial(0, "dev-q", "acme/lab", tok), seedEvent("q-after", "dev-q", "acme/lab", 20))
}

// A client that sends more QoS 1 PUBLISHes than the Receive Maximum its
// CONNACK gave, without waiting for their PUBACKs, is disconnected with
// 0x93, as MQTT 5 (section 3.3.4) says.
func TestReceiveMaximumIsEnforced(t *testing.T) {
	tn := startNetWith(t, t.TempDir(), 1, func(c *local.Config) { c.Guards.ReceiveMaximum = 8 })
	tok := tn.register("dev-rm", "acme/lab")
	raw := dialRaw(t, tn.MQTTAddrs()[0])
	if code := raw.login("dev-rm", "dev-rm", tok); code != 0 {
		t.Fatalf("login: CONNACK 0x%02x", code)
	}
	var burst []byte
	for id := 1; id <= 200; id++ {
		burst = append(burst, publishPacket(topic("dev-rm"), uint16(id), 1, false, mustJSON(t, seedEvent(fmt.Sprintf("rm-%d", id), "dev-rm", "acme/lab", 20)))...)
	}
	raw.send(burst)
	if code, err := raw.disconnectCode(); err != nil || code != 0x93 {
		t.Fatalf("200 PUBLISHes with Receive Maximum 8: DISCONNECT 0x%02x, %v; want 0x93", code, err)
	}
}

// A connection must send its CONNECT within the connect timeout: one that
// sends nothing, and one that sends a valid CONNECT a byte at a time, are
// both closed, and the hub serves others meanwhile.
func TestConnectTimeout(t *testing.T) {
	tn := startNetWith(t, t.TempDir(), 1, func(c *local.Config) { c.Guards.ConnectTimeout = 300 * time.Millisecond })
	tok := tn.register("dev-ct", "acme/lab")
	addr := tn.MQTTAddrs()[0]
	silent := dialRaw(t, addr)
	slow := dialRaw(t, addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for _, b := range connectPacket("dev-ct", "dev-ct", tok, 30) {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := slow.conn.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	for name, c := range map[string]*rawMQTT{"a socket that sends nothing": silent, "a CONNECT a byte at a time": slow} {
		if err := c.closed(10 * time.Second); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	publishOK(t, tn.dial(0, "dev-ct", "acme/lab", tok), seedEvent("ct-1", "dev-ct", "acme/lab", 20))
}

// Limits set in the registry, for a device or for a namespace, hold that
// device to them: events past its rate get 0x96, bytes past its byte rate
// 0x97, and none of them is logged; another device publishing meanwhile is
// not slowed or refused.
func TestDeviceLimitsFromTheRegistry(t *testing.T) {
	tn := startNet(t, t.TempDir(), 1)
	slowTok := tn.register("dev-slow", "acme/lab")
	bigTok := tn.register("dev-big", "acme/big")
	otherTok := tn.register("dev-other", "acme/lab")
	ctx := t.Context()
	if err := tn.reg.SetLimits(ctx, registry.LimitsRequest{DeviceUID: "dev-slow", Limits: registry.Limits{Rate: 5}}); err != nil {
		t.Fatal(err)
	}
	if err := tn.reg.SetLimits(ctx, registry.LimitsRequest{Namespace: "acme/big", Limits: registry.Limits{Bytes: 1000}}); err != nil {
		t.Fatal(err)
	}
	if d, err := tn.reg.Get(ctx, "dev-big"); err != nil || d.Limits.Bytes != 1000 {
		t.Fatalf("dev-big's limits: %+v, %v; want its namespace's", d, err)
	}
	for _, bad := range []registry.LimitsRequest{
		{DeviceUID: "dev-slow", Namespace: "acme/lab", Limits: registry.Limits{Rate: 1}},
		{DeviceUID: "dev-slow", Limits: registry.Limits{Rate: -1}},
		{DeviceUID: "dev-nobody", Limits: registry.Limits{Rate: 1}},
		{Namespace: "not a namespace", Limits: registry.Limits{Rate: 1}},
	} {
		if err := tn.reg.SetLimits(ctx, bad); err == nil {
			t.Errorf("SetLimits(%+v): no error", bad)
		}
	}

	other := tn.dial(0, "dev-other", "acme/lab", otherTok)
	var otherRefused atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			if r := publish(t, other, topic("dev-other"), mustJSON(t, seedEvent(fmt.Sprintf("other-%d", i), "dev-other", "acme/lab", 20))); r.Code != 0 {
				otherRefused.Add(1)
			}
		}
	})
	// n events at once, each answered in well under the second that
	// would refill the buckets.
	check := func(dev, ns, tok string, n int, pad int, want byte) {
		d := tn.dial(0, dev, ns, tok)
		codes := make([]byte, n)
		var pubs sync.WaitGroup
		for i := range n {
			pubs.Go(func() {
				ev := seedEvent(fmt.Sprintf("%s-%d", dev, i), dev, ns, 20)
				ev["items"] = append(ev["items"].([]any), map[string]any{"key": "pad", "value": strings.Repeat("x", pad)})
				codes[i] = publish(t, d, topic(dev), mustJSON(t, ev)).Code
			})
		}
		pubs.Wait()
		acked, refused := 0, 0
		for i, code := range codes {
			switch code {
			case 0:
				acked++
			case want:
				refused++
				if _, code := tn.event(fmt.Sprintf("%s-%d", dev, i)); code != 404 {
					t.Errorf("%s-%d was refused 0x%02x and is logged", dev, i, want)
				}
			default:
				t.Fatalf("%s: PUBACK 0x%02x, want 0 or 0x%02x", dev, code, want)
			}
		}
		if refused == 0 || acked == 0 {
			t.Fatalf("%s: %d acknowledged, %d refused with 0x%02x; want some of each", dev, acked, refused, want)
		}
	}
	check("dev-slow", "acme/lab", slowTok, 40, 0, 0x96)
	check("dev-big", "acme/big", bigTok, 40, 4000, 0x97) // a burst of 64 KiB, the largest event, then 1000 B/s
	wg.Wait()
	if n := otherRefused.Load(); n != 0 {
		t.Fatalf("dev-other had %d of 50 events refused while the others hit their limits", n)
	}
}

// A flood from one device, unpaced events of 64 KB, is held to its byte
// rate: what it gets logged is bounded by the rate and the time, and
// another device's events are all acknowledged meanwhile.
func TestFloodOfOneDevice(t *testing.T) {
	tn := startNetWith(t, t.TempDir(), 1, func(c *local.Config) { c.Guards.DeviceBytes = 256 << 10 })
	floodTok := tn.register("dev-flood", "acme/lab")
	otherTok := tn.register("dev-calm", "acme/lab")
	flood := tn.dial(0, "dev-flood", "acme/lab", floodTok)
	calm := tn.dial(0, "dev-calm", "acme/lab", otherTok)
	// 15 strings of 4,000 bytes (the longest a string may be): an event
	// of about 60 KiB.
	var blob []any
	for i := range 15 {
		blob = append(blob, map[string]any{"key": fmt.Sprintf("blob%d", i), "value": strings.Repeat("x", 4000)})
	}
	start := time.Now()
	var acked, refused atomic.Int64
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Since(start) < 1500*time.Millisecond; i++ {
				sent.Add(1)
				ev := seedEvent(fmt.Sprintf("flood-%d-%d", w, i), "dev-flood", "acme/lab", 20)
				ev["items"] = blob
				if r := publish(t, flood, topic("dev-flood"), mustJSON(t, ev)); r.Code == 0 {
					acked.Add(1)
				} else if r.Code == 0x97 {
					refused.Add(1)
				} else {
					t.Errorf("flood: PUBACK 0x%02x %q", r.Code, r.Reason)
				}
			}
		})
	}
	for i := range 20 {
		publishOK(t, calm, seedEvent(fmt.Sprintf("calm-%d", i), "dev-calm", "acme/lab", 20))
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	// The byte bucket holds a second's worth or one largest event,
	// whichever is more, and refills at its rate.
	bound := int64((float64(256<<10)*elapsed+float64(256<<10))/float64(60<<10)) + 1
	t.Logf("flood: %d of %d events of 60 KiB acknowledged in %.2fs (bound %d), %d refused with 0x97", acked.Load(), sent.Load(), elapsed, bound, refused.Load())
	if acked.Load() > bound || refused.Load() == 0 {
		t.Fatalf("flood: %d acknowledged (at most %d allowed), %d refused", acked.Load(), bound, refused.Load())
	}
}

// Failed logins from one address are throttled after the limit: even the
// right token then gets CONNACK 0x9F until the window ends; the log has a
// line for the first failure and one for the throttle, not one per
// attempt.
func TestFailedLoginsAreThrottled(t *testing.T) {
	tn := startNetWith(t, t.TempDir(), 1, func(c *local.Config) { c.Guards.LoginFailures = 5 })
	tok := tn.register("dev-l", "acme/lab")
	addr := tn.MQTTAddrs()[0]
	for i := range 5 {
		if code := dialRaw(t, addr).login("dev-l", "dev-l", "cst_wrong"); code != 0x86 {
			t.Fatalf("wrong token %d: CONNACK 0x%02x, want 0x86", i, code)
		}
	}
	if code := dialRaw(t, addr).login("dev-l", "dev-l", tok); code != 0x9F {
		t.Fatalf("the right token after 5 failures: CONNACK 0x%02x, want 0x9F", code)
	}
	logs := tn.logs.String()
	if n := strings.Count(logs, `msg="device login refused"`); n != 1 {
		t.Errorf("%d 'device login refused' lines for 5 failures, want 1", n)
	}
	if !strings.Contains(logs, "device logins throttled") {
		t.Errorf("no line says the address is throttled")
	}
}
