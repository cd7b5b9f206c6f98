package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"cissan/internal/bench"
)

// runBench measures the whole pipeline against the bare broker, in one
// run (internal/bench).
func runBench(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c bench.Config
	fs.IntVar(&c.Devices, "devices", 32, "simulated devices")
	// 64 in flight per device: with 4, the hub's commit groups and the
	// PUBACK writes were small and the pipeline waited on round trips
	// with a fifth of the CPU idle; at 64 it is busy (2,048 publishes in
	// flight, as many as 2,048 devices with one each, over fewer
	// connections). The hub allows a client 1,024 (MQTT 5 Receive Maximum).
	fs.IntVar(&c.Window, "window", 64, "publishes in flight per device")
	fs.Float64Var(&c.Rate, "rate", 0, "events/s for all devices together; 0: as fast as PUBACKs allow (bounded by --window)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long each of the two runs publishes")
	fs.IntVar(&c.Hubs, "hubs", 1, "hub nodes")
	fs.DurationVar(&c.BlockInterval, "block-interval", time.Second, "time between blocks")
	fs.IntVar(&c.PayloadItems, "payload-items", 3, "items per event")
	fs.StringVar(&c.DataDir, "data-dir", "", "keep the network's stores here (default: a temporary directory, removed after)")
	fs.BoolVar(&c.NoBaseline, "no-baseline", false, "skip the broker-only run (to profile the pipeline alone)")
	fs.DurationVar(&c.RSSEvery, "rss-every", 0, "sample resident memory this often during the pipeline run (0: off); shows whether memory stays flat")
	mqttAddrs := fs.String("mqtt", "", "run against hubs that run elsewhere: their MQTT addresses, host:port,... (then --api is needed)")
	apiURL := fs.String("api", "", "with --mqtt: the network's API (the master's, or cissan up's), to register devices and read the chain back")
	registryURL := fs.String("registry", "", "with --mqtt: the registry's API, if not --api")
	tokenFile := fs.String("token-file", "./data/admin.token", "with --mqtt: file holding the operator token (CISSAN_TOKEN overrides it)")
	fs.BoolVar(&c.TLS, "tls", false, "both runs over MQTT over TLS, with a throwaway CA and certificate (to measure what TLS costs)")
	asJSON := fs.Bool("json", false, "print one JSON object with every figure")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile at the end to this file")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *mqttAddrs != "" {
		tok, err := operatorToken(*tokenFile)
		if err != nil {
			return err
		}
		c.Remote = &bench.Remote{MQTTAddrs: strings.Split(*mqttAddrs, ","), APIURL: *apiURL, RegistryURL: *registryURL, Token: tok}
	}
	c.Progress = func(format string, args ...any) { fmt.Fprintf(env.Stderr, format+"\n", args...) }
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	r, err := bench.Run(ctx, c)
	if err != nil {
		return err
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	if *asJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
	} else if r.Remote {
		fmt.Fprintf(env.Stdout, `%d events acknowledged by %d remote hub(s) from %d devices (%d in flight each) in %.0fs
  end to end (publish to final block)  %8.0f events/s
  the same load, local broker only     %8.0f events/s   ratio %.2f
  publish to final block               p50 %6.0f ms   p99 %6.0f ms
  PUBACK                               p50 %6.1f ms   p99 %6.1f ms
  load generator CPU                   %.3f s per 1,000 events (the network's CPU, memory and disk are not visible from here)
  lost %d, logged twice %d, refused %d
`, r.Events, len(c.Remote.MQTTAddrs), r.Devices, r.Window, r.DurationSeconds, r.EventsPerSec, r.BrokerOnlyPerSec, r.Ratio,
			r.PublishToFinalP50, r.PublishToFinalP99, r.PubackP50, r.PubackP99, r.LoadCPUSecondsPer1k,
			r.EventsLost, r.EventsDuplicated, r.Refused)
	} else {
		fmt.Fprintf(env.Stdout, `%d events acknowledged by %d hub(s) from %d devices (%d in flight each) in %.0fs
  end to end (publish to final block)  %8.0f events/s
  the same broker, logging off         %8.0f events/s   ratio %.2f
  publish to final block               p50 %6.0f ms   p99 %6.0f ms
  block minted to final                p50 %6.0f ms   p99 %6.0f ms
  block minted to searchable           p50 %6.0f ms   p99 %6.0f ms
  PUBACK                               p50 %6.1f ms   p99 %6.1f ms
  CPU                                  %.3f s per 1,000 events (load generator included)
  peak RSS                             %.0f MiB
  disk, index included                 %.0f bytes per event on the master, %.0f on a hub (events are %.0f bytes of JSON)
  lost %d, logged twice %d, refused %d
`, r.Events, r.Hubs, r.Devices, r.Window, r.DurationSeconds, r.EventsPerSec, r.BrokerOnlyPerSec, r.Ratio,
			r.PublishToFinalP50, r.PublishToFinalP99, r.MintToFinalP50, r.MintToFinalP99, r.MintToIndexedP50, r.MintToIndexedP99, r.PubackP50, r.PubackP99, r.CPUSecondsPer1k,
			float64(r.PeakRSSBytes)/(1<<20), r.DiskBytesPerEvent, r.HubDiskBytesPerEvent, r.EventJSONBytes, r.EventsLost, r.EventsDuplicated, r.Refused)
	}
	if n := len(r.RSSSamples); n > 0 && !*asJSON {
		var peak int64
		for _, s := range r.RSSSamples {
			peak = max(peak, s.RSSBytes)
		}
		fmt.Fprintf(env.Stdout, "  resident memory over the run       %.0f MiB at start, %.0f MiB at the end, %.0f MiB at most (%d samples)\n",
			float64(r.RSSSamples[0].RSSBytes)/(1<<20), float64(r.RSSSamples[n-1].RSSBytes)/(1<<20), float64(peak)/(1<<20), n)
	}
	if r.EventsLost > 0 || r.EventsDuplicated > 0 {
		return fmt.Errorf("bench: %d acknowledged events lost, %d logged twice", r.EventsLost, r.EventsDuplicated)
	}
	return nil
}
