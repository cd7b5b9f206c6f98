package bench

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/event"
	"cissan/internal/local"
)

// TestRunCountsEveryEventOnce runs a short bench and checks that its
// figures hang together: every acknowledged event is in the chain once,
// and both runs moved events.
func TestRunCountsEveryEventOnce(t *testing.T) {
	r, err := Run(context.Background(), Config{
		Devices: 4, Window: 2, Duration: 500 * time.Millisecond, Hubs: 2, BlockInterval: 100 * time.Millisecond, PayloadItems: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Events == 0 || r.EventsPerSec <= 0 || r.BrokerOnlyPerSec <= 0 || r.Ratio <= 0 {
		t.Fatalf("no load measured: %+v", r)
	}
	if r.EventsLost != 0 || r.EventsDuplicated != 0 || r.Refused != 0 {
		t.Fatalf("lost %d, duplicated %d, refused %d", r.EventsLost, r.EventsDuplicated, r.Refused)
	}
	if r.PublishToFinalP50 <= 0 || r.PublishToFinalP99 < r.PublishToFinalP50 || r.PubackP99 < r.PubackP50 {
		t.Fatalf("latencies out of order: %+v", r)
	}
	if r.DiskBytesPerEvent <= 0 || r.PeakRSSBytes <= 0 || r.CPUSecondsPer1k <= 0 || r.EventJSONBytes < 100 {
		t.Fatalf("resource figures missing: %+v", r)
	}
}

// TestRunRemote runs a short bench against a network started apart from
// it, as `cissan bench --mqtt` does against running hubs: devices are
// registered through the API, and every acknowledged event is read back
// through it exactly once.
func TestRunRemote(t *testing.T) {
	ctx := context.Background()
	n, err := local.Start(ctx, local.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Hubs: 2, BlockInterval: 100 * time.Millisecond,
		Limits: event.DefaultLimits(), Analyzers: analyze.Config{Range: analyze.DefaultRangeRules()},
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	r, err := Run(ctx, Config{
		Devices: 4, Window: 2, Duration: 500 * time.Millisecond, Hubs: 2, BlockInterval: 100 * time.Millisecond, PayloadItems: 3,
		NoBaseline: true, Remote: &Remote{MQTTAddrs: n.MQTTAddrs(), APIURL: n.APIURL, Token: n.Token},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Remote || r.Events == 0 || r.EventsPerSec <= 0 {
		t.Fatalf("no load measured: %+v", r)
	}
	if r.PeakRSSBytes != 0 || r.CPUSecondsPer1k != 0 || r.LoadPeakRSSBytes <= 0 || r.LoadCPUSecondsPer1k <= 0 {
		t.Fatalf("the network's resources are reported for the load generator's: %+v", r)
	}
	if r.EventsLost != 0 || r.EventsDuplicated != 0 || r.Refused != 0 {
		t.Fatalf("lost %d, duplicated %d, refused %d", r.EventsLost, r.EventsDuplicated, r.Refused)
	}
	if r.PublishToFinalP50 <= 0 || r.PublishToFinalP99 < r.PublishToFinalP50 {
		t.Fatalf("latencies out of order: %+v", r)
	}
}

// TestRunOverTLS runs a short bench with --tls: both runs move events over
// TLS, and every acknowledged event is in the chain once.
func TestRunOverTLS(t *testing.T) {
	r, err := Run(context.Background(), Config{
		Devices: 4, Window: 8, Duration: 500 * time.Millisecond, Hubs: 2, BlockInterval: 100 * time.Millisecond, PayloadItems: 3, TLS: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.TLS || r.Events == 0 || r.BrokerOnlyPerSec <= 0 {
		t.Fatalf("no load measured over TLS: %+v", r)
	}
	if r.EventsLost != 0 || r.EventsDuplicated != 0 || r.Refused != 0 {
		t.Fatalf("lost %d, duplicated %d, refused %d", r.EventsLost, r.EventsDuplicated, r.Refused)
	}
	if _, err := Run(context.Background(), Config{Devices: 1, Window: 1, Duration: time.Second, Hubs: 1, TLS: true, Remote: &Remote{MQTTAddrs: []string{"x:1"}, APIURL: "http://x"}}); err == nil {
		t.Fatal("TLS against a remote network was accepted")
	}
}
