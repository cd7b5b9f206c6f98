package sim

import (
	"math/rand/v2"
	"testing"
	"time"

	"cissan/internal/event"
)

// NextPayload writes its JSON by hand; the hub's strict parser must take
// it, with the items asked for.
func TestNextPayloadParses(t *testing.T) {
	d := &Device{UID: "dev-1", Namespace: "acme/weather", rng: rand.New(rand.NewPCG(1, 2)), temp: 21, hum: 45}
	now := time.UnixMilli(1_700_000_000_000)
	for _, items := range []int{0, 1, 3, 6} {
		uid, payload := d.NextPayload(now, items)
		ev, err := event.Parse(payload, event.DefaultLimits())
		if err != nil {
			t.Fatalf("items=%d: %s: %v", items, payload, err)
		}
		want := max(items, 3)
		if items > 0 {
			want = items
		}
		if ev.UID != uid || ev.DeviceUID != d.UID || ev.Namespace != d.Namespace || ev.Timestamp != now.UnixMilli() || len(ev.Items) != want {
			t.Errorf("items=%d: parsed %+v from %s", items, ev, payload)
		}
	}
}
