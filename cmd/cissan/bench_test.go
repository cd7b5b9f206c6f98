package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cissan/internal/registry"
	"cissan/internal/sim"
)

// BenchmarkNetworks compares, in one run, three hubs in one process
// (`cissan up --hubs 3`) with registry, master and three hubs as separate
// processes over RabbitMQ: 9 devices publish for 3 s, two events in flight
// each, and events/s counts acknowledged events over the time from the
// first publish until the last of them is final. Run with -benchtime 1x.
func BenchmarkNetworks(b *testing.B) {
	b.Run("up/hubs=3", func(b *testing.B) {
		for range b.N {
			bin := cissanBin(b)
			dir := filepath.Join(b.TempDir(), "data")
			httpPort := freePort(b)
			mqtt := freePort(b)
			for !portsFree(mqtt, 3) || (httpPort >= mqtt && httpPort < mqtt+3) {
				mqtt = freePort(b)
			}
			api := "http://127.0.0.1:" + strconv.Itoa(httpPort)
			p := startProc(b, bin, filepath.Join(b.TempDir(), "up.stderr"), "up", "--data-dir", dir,
				"--http-addr", "127.0.0.1:"+strconv.Itoa(httpPort), "--mqtt-addr", "127.0.0.1:"+strconv.Itoa(mqtt),
				"--hubs", "3", "--block-interval", "200ms", "--log-level", "warn")
			waitReady(b, p, api)
			tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
			if err != nil {
				b.Fatal(err)
			}
			token := strings.TrimSpace(string(tok))
			reg := &registry.Client{BaseURL: api, Token: token}
			var devs []*sim.Device
			for i := 0; i < 9; i++ {
				uid := fmt.Sprintf("dev-%d", i)
				_, dt, err := reg.Add(context.Background(), "fleet/site", uid)
				if err != nil {
					b.Fatal(err)
				}
				d, err := sim.Dial(context.Background(), "127.0.0.1:"+strconv.Itoa(mqtt+i%3), uid, "fleet/site", dt)
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				devs = append(devs, d)
			}
			measure(b, devs, func(n int) { waitCount(b, api, token, n) })
		}
	})
	b.Run("roles over RabbitMQ/hubs=3", func(b *testing.B) {
		for range b.N {
			n := startRoleNet(b, 3)
			devs := n.devices(9)
			measure(b, devs, func(count int) { waitCount(b, n.masterAPI, n.masterToken, count) })
		}
	})
}

func measure(b *testing.B, devs []*sim.Device, waitAllFinal func(n int)) {
	acked := &ackSet{uids: map[string]bool{}}
	var st loadStats
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	publishLoad(ctx, devs, 2, acked, &st).Wait()
	ackedIn := time.Since(start)
	waitAllFinal(acked.len())
	total := time.Since(start)
	b.ReportMetric(float64(acked.len())/total.Seconds(), "events/s")
	b.ReportMetric(float64(acked.len())/ackedIn.Seconds(), "acked/s")
}

// portsFree reports whether n consecutive ports from p are free.
func portsFree(p, n int) bool {
	for i := 0; i < n; i++ {
		if !portFree(p + i) {
			return false
		}
	}
	return true
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// waitCount waits until the chain holds at least n events and every block
// is final, asking GET /v1/status.
func waitCount(b *testing.B, api, token string, n int) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var st struct {
			Events      int    `json:"events"`
			Height      uint64 `json:"height"`
			FinalHeight uint64 `json:"final_height"`
		}
		if _, err := getJSON(api, token, "/v1/status", &st); err == nil && st.Events >= n && st.FinalHeight == st.Height {
			return
		}
	}
	b.Fatalf("%d events not final within a minute", n)
}
