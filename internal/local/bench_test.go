package local_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/event"
	"cissan/internal/local"
	"cissan/internal/sim"
)

// BenchmarkEndToEnd publishes b.N events from 32 devices over MQTT 5 at
// QoS 1 and waits until the last block holding them is final on every
// hub. It reports events/s from the first publish to finality.
func BenchmarkEndToEnd(b *testing.B) {
	ranges := analyze.Config{Range: analyze.DefaultRangeRules()}
	withForest := ranges
	withForest.IForest = []analyze.IForestConfig{{Keys: []string{"temperature", "humidity"}, Contamination: 0.01}}
	for _, c := range []struct {
		name string
		hubs int
		cfg  analyze.Config
	}{
		{"hubs=1", 1, ranges},
		{"hubs=1/iforest", 1, withForest},
		{"hubs=2", 2, ranges},
	} {
		b.Run(c.name, func(b *testing.B) { benchEndToEnd(b, c.hubs, c.cfg) })
	}
}

func benchEndToEnd(b *testing.B, hubs int, cfg analyze.Config) {
	ctx := context.Background()
	n, err := local.Start(ctx, local.Config{
		DataDir: b.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Hubs: hubs,
		BlockInterval: 200 * time.Millisecond, Limits: event.DefaultLimits(), Analyzers: cfg,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	const devices = 32
	devs := make([]*sim.Device, devices)
	for i := range devs {
		uid := fmt.Sprintf("bench-%d", i)
		_, tok, err := n.Registry.Add(ctx, "bench/fleet", uid)
		if err != nil {
			b.Fatal(err)
		}
		if devs[i], err = sim.Dial(ctx, n.MQTTAddrs()[i%hubs], uid, "bench/fleet", tok); err != nil {
			b.Fatal(err)
		}
		defer devs[i].Close()
	}
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each device keeps one publish in flight, as a real sensor does.
			for next.Add(1) <= int64(b.N) {
				r, err := d.PublishEvent(ctx, time.Now())
				if err != nil || !r.OK() {
					b.Errorf("publish: %v %+v", err, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	acked := time.Since(start)
	led := n.Master.Ledger()
	for {
		c, err := led.Index().Count(ctx)
		if err != nil {
			b.Fatal(err)
		}
		h := led.Height()
		if c >= int64(b.N) && h > 0 {
			if final, _ := led.Final(h - 1); final {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	total := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/total.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/acked.Seconds(), "acked/s")
	b.ReportMetric(float64(led.Tagged())/float64(b.N), "tagged/event")
}
