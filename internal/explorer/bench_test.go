package explorer_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"cissan/internal/event"
	"cissan/internal/explorer"
	"cissan/internal/ledger"
	"cissan/internal/metrics"
	"cissan/internal/synth"
)

// BenchmarkDashboard measures the dashboard's render on chains of growing
// size, built once by package synth under $CISSAN_SYNTH_DIR (skipped
// without it):
//
//	CISSAN_SYNTH_DIR=/var/tmp/cissan-synth go test -run XXX -bench Dashboard -benchtime 200x ./internal/explorer/
//
// "first-ms" is a cold start: a new explorer's first page, which does not
// wait for the event count. "count-ms" is that count, taken once by a new
// explorer in the background: one pass over the block headers. ns/op is
// every later render, which reads only the sampler's snapshot, and
// "sample-ms" one tick of the sampler: neither may grow with the chain.
func BenchmarkDashboard(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			info := synth.ForBenchmark(b, n, synth.Options{Hubs: 2})
			led, err := ledger.Open(context.Background(), ledger.Config{Dir: info.MasterDir, Network: info.Network,
				Limits: event.DefaultLimits(), Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer led.Close()
			start := time.Now()
			ex, err := explorer.New(explorer.Config{Ledger: led, Metrics: metrics.New(),
				Status: func(context.Context) map[string]any {
					return map[string]any{"nodes": []map[string]any{{"id": "master", "role": "master", "height": led.Height(), "pool": 0}}}
				}})
			if err != nil {
				b.Fatal(err)
			}
			render(b, ex)
			first := time.Since(start)
			// Run's first sample counts the events: one pass over the headers.
			start = time.Now()
			ex.Sample(context.Background())
			count := time.Since(start)
			// The count is written with spaces between thousands.
			if body := render(b, ex); !strings.Contains(strings.ReplaceAll(body, " ", ""), ">"+strconv.Itoa(n)+"<") {
				b.Fatalf("dashboard does not show %d events", n)
			}
			for b.Loop() {
				render(b, ex)
			}
			// The sampler's tick, once a second in a running node: also
			// independent of the chain's size.
			const ticks = 20
			t0 := time.Now()
			for range ticks {
				ex.Sample(context.Background())
			}
			b.ReportMetric(float64(time.Since(t0).Microseconds())/ticks/1000, "sample-ms")
			b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
			b.ReportMetric(float64(count.Microseconds())/1000, "count-ms")
			b.ReportMetric(float64(led.Height()), "blocks")
		})
	}
}

func render(b *testing.B, ex *explorer.Explorer) string {
	rec := httptest.NewRecorder()
	ex.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		b.Fatalf("GET /: %d", rec.Code)
	}
	return rec.Body.String()
}
