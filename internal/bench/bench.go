// Package bench measures the whole pipeline: simulated devices publish
// over real MQTT 5 at QoS 1 to a network it starts itself, and it reports
// sustained events/s from publish to final block, latencies, CPU, memory
// and disk per event, and whether any acknowledged event was lost or
// logged twice; and, in the same run, the same load against the same
// embedded broker with logging switched off, the ceiling to compare with.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"cissan/internal/analyze"
	"cissan/internal/event"
	"cissan/internal/local"
	"cissan/internal/sim"
	"cissan/internal/store"
)

// Config is one bench run.
type Config struct {
	Devices       int           // simulated devices
	Window        int           // publishes in flight per device
	Rate          float64       // events/s for all devices together; 0: as fast as PUBACKs allow
	Duration      time.Duration // of the load
	Hubs          int
	BlockInterval time.Duration
	PayloadItems  int    // items per event (1-3 sensor readings, then extra numeric items)
	DataDir       string // where the network keeps its stores; a temporary directory if empty
	// NoBaseline skips the broker-only run, so that a CPU profile shows
	// the pipeline alone; the result then has no ratio.
	NoBaseline bool
	// RSSEvery, if positive, samples the process's resident memory this
	// often while the pipeline runs, to show whether memory stays flat.
	RSSEvery time.Duration
	// Remote, if set, runs the load against hubs that run elsewhere
	// instead of a network the bench starts (see Remote).
	Remote *Remote
	// TLS runs both runs over MQTT over TLS, with a throwaway CA (tls.go).
	TLS      bool
	Progress func(format string, args ...any)
}

// Result holds the figures of one run. JSON names are the documented
// output of `cissan bench --json`.
type Result struct {
	Events               int     `json:"events"` // acknowledged
	EventsPerSec         float64 `json:"events_per_sec"`
	BrokerOnlyPerSec     float64 `json:"broker_only_events_per_sec"`
	Ratio                float64 `json:"ratio"`
	PublishToFinalP50    float64 `json:"publish_to_final_p50_ms"`
	PublishToFinalP99    float64 `json:"publish_to_final_p99_ms"`
	MintToFinalP50       float64 `json:"mint_to_final_p50_ms"` // block minted to block final
	MintToFinalP99       float64 `json:"mint_to_final_p99_ms"`
	MintToIndexedP50     float64 `json:"mint_to_indexed_p50_ms"` // block minted to indexed by the master (searchable)
	MintToIndexedP99     float64 `json:"mint_to_indexed_p99_ms"`
	PubackP50            float64 `json:"puback_p50_ms"`
	PubackP99            float64 `json:"puback_p99_ms"`
	CPUSecondsPer1k      float64 `json:"cpu_seconds_per_1k_events"`
	PeakRSSBytes         int64   `json:"peak_rss_bytes"`
	DiskBytesPerEvent    float64 `json:"disk_bytes_per_event"`     // the master's
	HubDiskBytesPerEvent float64 `json:"hub_disk_bytes_per_event"` // the largest hub's
	EventJSONBytes       float64 `json:"event_json_bytes"`
	EventsLost           int     `json:"events_lost"`
	EventsDuplicated     int     `json:"events_duplicated"`
	Refused              int     `json:"events_refused"`
	Hubs                 int     `json:"hubs"`
	TLS                  bool    `json:"tls,omitempty"` // MQTT over TLS in both runs
	Devices              int     `json:"devices"`
	Window               int     `json:"window"`
	DurationSeconds      float64 `json:"duration_seconds"`
	BlockIntervalMillis  int64   `json:"block_interval_ms"`
	RatePerSec           float64 `json:"rate_per_sec,omitempty"`
	// Remote: the network ran elsewhere, so its CPU, memory and disk
	// figures stay zero; LoadCPUSecondsPer1k and LoadPeakRSSBytes are the
	// load generator's own.
	Remote              bool    `json:"remote,omitempty"`
	LoadCPUSecondsPer1k float64 `json:"load_cpu_seconds_per_1k_events,omitempty"`
	LoadPeakRSSBytes    int64   `json:"load_peak_rss_bytes,omitempty"`
	// RSS sampled during the pipeline run (Config.RSSEvery).
	RSSSamples []RSSSample `json:"rss_samples,omitempty"`
}

// RSSSample is the process's resident memory and Go heap at one moment.
type RSSSample struct {
	Seconds   float64 `json:"s"`
	RSSBytes  int64   `json:"rss_bytes"`
	HeapBytes uint64  `json:"heap_inuse_bytes"`
}

// sampleRSS records memory every d until stop is closed.
func sampleRSS(d time.Duration, stop <-chan struct{}) <-chan []RSSSample {
	out := make(chan []RSSSample, 1)
	go func() {
		var got []RSSSample
		start := time.Now()
		t := time.NewTicker(d)
		defer t.Stop()
		take := func() {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			got = append(got, RSSSample{Seconds: time.Since(start).Seconds(), RSSBytes: currentRSS(), HeapBytes: ms.HeapInuse})
		}
		take()
		for {
			select {
			case <-stop:
				take()
				out <- got
				return
			case <-t.C:
				take()
			}
		}
	}()
	return out
}

// currentRSS reads the resident set size from /proc (Linux); 0 elsewhere.
func currentRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// sample is one acknowledged publish, as the load's record keeps it.
type sample struct {
	dev   int32 // index into the run's devices
	seq   int32 // the uid's sequence number
	ms    int64 // the uid's milliseconds (see sim.Device.NextPayload)
	sent  int64 // publish started, ns after the run began
	ackUs int32 // PUBACK latency
	size  int32 // payload bytes
}

// uid rebuilds the event's uid.
func (s *sample) uid(devs []*sim.Device) string {
	return devs[s.dev].UID + "-" + strconv.FormatInt(s.ms, 10) + "-" + strconv.Itoa(int(s.seq))
}

// sentAt is when the publish started.
func (s *sample) sentAt(begin time.Time) time.Time { return begin.Add(time.Duration(s.sent)) }

func (s *sample) pubackMs() float64 { return float64(s.ackUs) / 1000 }

// uidParts splits a sim uid (device-ms-seq) into its numbers.
func uidParts(uid string) (ms int64, seq int32, ok bool) {
	j := strings.LastIndexByte(uid, '-')
	if j < 0 {
		return 0, 0, false
	}
	i := strings.LastIndexByte(uid[:j], '-')
	if i < 0 {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseInt(uid[i+1:j], 10, 64)
	n, err2 := strconv.ParseInt(uid[j+1:], 10, 32)
	return ms, int32(n), err1 == nil && err2 == nil
}

// loadOpts says how load publishes.
type loadOpts struct {
	window   int     // publishes in flight per device
	rate     float64 // events/s for all devices together; 0: as fast as PUBACKs allow
	duration time.Duration
	items    int // items per event
	progress func(string, ...any)
	// rec, if not nil, gets every acknowledged publish; the broker-only
	// run needs only their number.
	rec *record
}

// load publishes from devs and returns the number of acknowledged
// publishes, the number refused, and when it began (samples' times count
// from then).
func load(ctx context.Context, devs []*sim.Device, o loadOpts) (int, int, time.Time) {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var acked, refused, sent atomic.Int64
	// At a fixed rate, publish n is due at begin + n/rate: a shared
	// schedule rather than a ticker, whose ticks are lost when they come
	// faster than the timer resolution.
	begin := time.Now()
	var due atomic.Int64
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if o.progress != nil {
					o.progress("%5.0fs  %d published, %.0f/s", time.Since(start).Seconds(), sent.Load(), float64(sent.Load())/time.Since(start).Seconds())
				}
			}
		}
	}()
	defer close(stop)
	var wg sync.WaitGroup
	for di, dev := range devs {
		topic := "devices/" + dev.UID + "/events"
		for range o.window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// One context for all of the worker's publishes: a publish
				// still in flight when the run ends has 30 s for its PUBACK.
				pctx, pcancel := context.WithTimeout(context.Background(), o.duration+30*time.Second)
				defer pcancel()
				for {
					if o.rate > 0 {
						at := begin.Add(time.Duration(float64(due.Add(1)-1) / o.rate * float64(time.Second)))
						if wait := time.Until(at); wait > 0 {
							select {
							case <-time.After(wait):
							case <-ctx.Done():
								return
							}
						}
					}
					if ctx.Err() != nil {
						return
					}
					uid, payload := dev.NextPayload(time.Now(), o.items)
					ms, seq, _ := uidParts(uid)
					t0 := time.Now()
					s := sample{dev: int32(di), seq: seq, ms: ms, sent: int64(t0.Sub(begin)), size: int32(len(payload))}
					r, err := dev.Publish(pctx, topic, payload)
					sent.Add(1)
					if err != nil || !r.OK() {
						refused.Add(1)
						continue
					}
					s.ackUs = int32(time.Since(t0).Microseconds())
					acked.Add(1)
					if o.rec != nil {
						o.rec.add(s)
					}
				}
			}()
		}
	}
	wg.Wait()
	return int(acked.Load()), int(refused.Load()), begin
}

func (c *Config) loadOpts(rec *record) loadOpts {
	return loadOpts{window: c.Window, rate: c.Rate, duration: c.Duration, items: c.PayloadItems, progress: c.Progress, rec: rec}
}

func (c *Config) say(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(format, args...)
	}
}

// Run runs the broker-only baseline, then the full pipeline, with the same
// load generator.
func Run(ctx context.Context, c Config) (*Result, error) {
	if c.Devices < 1 || c.Window < 1 || c.Hubs < 1 || c.Duration <= 0 {
		return nil, errors.New("bench: devices, window, hubs and duration must be positive")
	}
	say := c.say
	res := &Result{RatePerSec: c.Rate, Hubs: c.Hubs, Devices: c.Devices, Window: c.Window, DurationSeconds: c.Duration.Seconds(), BlockIntervalMillis: c.BlockInterval.Milliseconds()}

	if c.TLS && c.Remote != nil {
		return nil, errors.New("bench: TLS is for the network the bench starts, not a remote one")
	}
	var err error
	var bt *benchTLS // nil without TLS
	if c.TLS {
		if bt, err = newBenchTLS(); err != nil {
			return nil, err
		}
		defer bt.close()
		res.TLS = true
	}
	if !c.NoBaseline {
		say("broker only: %d devices, %d in flight each, for %v", c.Devices, c.Window, c.Duration)
		if res.BrokerOnlyPerSec, err = brokerOnly(ctx, c, bt); err != nil {
			return nil, err
		}
		// The baseline's garbage goes back to the system before the
		// pipeline starts: the peak RSS reported is the pipeline's, not
		// the baseline's heap left for the runtime to return at leisure.
		debug.FreeOSMemory()
	}

	if c.Remote != nil {
		if len(c.Remote.MQTTAddrs) == 0 || c.Remote.APIURL == "" {
			return nil, errors.New("bench: a remote network needs its hubs' MQTT addresses and its API URL")
		}
		if err := runRemote(ctx, c, res); err != nil {
			return nil, err
		}
		res.LoadPeakRSSBytes = peakRSS()
		return res, nil
	}

	dir := c.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cissan-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	}
	n, err := local.Start(ctx, local.Config{
		DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: bt.plainAddr(), MQTTSAddr: "127.0.0.1:0", TLS: bt.server(), Hubs: c.Hubs, BlockInterval: c.BlockInterval,
		Limits: event.DefaultLimits(), Analyzers: analyze.Config{Range: analyze.DefaultRangeRules()},
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	devs, err := devices(ctx, n, c.Devices, bt)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()

	// Watch finality and the master's index: when each block became final,
	// and when searchable.
	led := n.Master.Ledger()
	var finalMu sync.Mutex
	finalAt, indexedAt := map[uint64]time.Time{}, map[uint64]time.Time{}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		var final, indexed uint64
		mark := func(at map[uint64]time.Time, seen *uint64, now uint64) {
			for h := *seen; h < now; h++ {
				at[h] = time.Now()
			}
			*seen = max(*seen, now)
		}
		for wctx.Err() == nil {
			f, x := led.FinalHeight(), led.IndexedHeight()
			finalMu.Lock()
			mark(finalAt, &final, f)
			mark(indexedAt, &indexed, x)
			finalMu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()

	say("pipeline: %d hubs, %v blocks", c.Hubs, c.BlockInterval)
	rec, err := newRecord()
	if err != nil {
		return nil, err
	}
	defer rec.close()
	var rss <-chan []RSSSample
	stopRSS := make(chan struct{})
	if c.RSSEvery > 0 {
		rss = sampleRSS(c.RSSEvery, stopRSS)
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	acked, refused, begin := load(ctx, devs, c.loadOpts(rec))
	close(stopRSS)
	if rss != nil {
		res.RSSSamples = <-rss
	}
	res.Refused = refused
	res.Events = acked
	// Wait until every acknowledged event is in a final block.
	var lastFinal time.Time
	deadline := time.Now().Add(2*time.Minute + 20*c.BlockInterval)
	for {
		count, err := led.Index().Count(ctx)
		if err != nil {
			return nil, err
		}
		h := led.Height()
		if int(count) >= acked && h > 0 && led.FinalHeight() == h {
			lastFinal = time.Now()
			break
		}
		if time.Now().After(deadline) {
			say("not every acknowledged event became final within the deadline")
			lastFinal = time.Now()
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := lastFinal.Sub(start)
	cpu := cpuSeconds() - cpu0
	wcancel()
	res.EventsPerSec = float64(acked) / elapsed.Seconds()
	if res.BrokerOnlyPerSec > 0 {
		res.Ratio = res.EventsPerSec / res.BrokerOnlyPerSec
	}
	if acked > 0 {
		res.CPUSecondsPer1k = cpu / float64(acked) * 1000
	}

	// Exactly once, and the latencies, from the master's chain.
	st := led.Store()
	var puback, final latencies
	var jsonBytes int
	finalMu.Lock()
	err = rec.each(func(s sample) error {
		jsonBytes += int(s.size)
		puback.add(s.pubackMs())
		locs, err := st.Locate(event.ID(s.uid(devs), devs[s.dev].UID))
		if errors.Is(err, store.ErrNotFound) {
			res.EventsLost++
			return nil
		}
		if err != nil {
			return err
		}
		if at, ok := finalAt[locs[0].Height]; ok {
			final.add(float64(at.Sub(s.sentAt(begin)).Microseconds()) / 1000)
		}
		return nil
	})
	finalMu.Unlock()
	if err != nil {
		return nil, err
	}
	count, err := led.Index().Count(ctx)
	if err != nil {
		return nil, err
	}
	if extra := int(count) - (acked - res.EventsLost); extra > 0 {
		res.EventsDuplicated = extra // the chain holds nothing but this run's events
	}
	res.PubackP50, res.PubackP99 = puback.quantiles()
	res.PublishToFinalP50, res.PublishToFinalP99 = final.quantiles()
	// How long blocks took from minting to final: the part of the
	// latency that is not waiting for the next block.
	sinceMint := func(at map[uint64]time.Time) (p50, p99 float64) {
		var ms latencies
		for h, t := range at {
			if hdr, _, err := st.Header(h); err == nil && hdr.EntryCount > 0 {
				ms.add(float64(t.UnixMilli() - hdr.MintTimeMs))
			}
		}
		return ms.quantiles()
	}
	finalMu.Lock()
	res.MintToFinalP50, res.MintToFinalP99 = sinceMint(finalAt)
	res.MintToIndexedP50, res.MintToIndexedP99 = sinceMint(indexedAt)
	finalMu.Unlock()
	res.PeakRSSBytes = peakRSS()
	// Disk is measured once the network has closed: the stores then hold
	// what they keep, without the write-ahead logs that a running node
	// recycles (Pebble's memtables are flushed, SQLite checkpoints).
	if err := n.Close(); err != nil {
		return nil, err
	}
	if acked > 0 {
		res.EventJSONBytes = float64(jsonBytes) / float64(acked)
		res.DiskBytesPerEvent = float64(dirSize(filepath.Join(dir, "master"))) / float64(acked)
		for i := range c.Hubs {
			per := float64(dirSize(filepath.Join(dir, fmt.Sprintf("hub-%d", i+1)))) / float64(acked)
			res.HubDiskBytesPerEvent = max(res.HubDiskBytesPerEvent, per)
		}
	}
	return res, nil
}

// devices registers and connects count devices, spread over the hubs.
func devices(ctx context.Context, n *local.Network, count int, bt *benchTLS) ([]*sim.Device, error) {
	addrs := n.MQTTAddrs()
	if bt != nil {
		addrs = n.MQTTSAddrs()
	}
	var out []*sim.Device
	for i := range count {
		uid := fmt.Sprintf("bench-%d", i)
		_, tok, err := n.Registry.Add(ctx, "bench/fleet", uid)
		if err != nil {
			return out, err
		}
		d, err := sim.DialTLS(ctx, addrs[i%len(addrs)], bt.clientConfig(), uid, "bench/fleet", tok)
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// brokerOnly runs the load against the same embedded broker, configured
// as a hub configures it, with a hook that admits every device and
// acknowledges every publish without logging it.
func brokerOnly(ctx context.Context, c Config, bt *benchTLS) (float64, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1
	s := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(ackAll), nil); err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr, TLSConfig: bt.serverConfig()})); err != nil {
		return 0, err
	}
	if err := s.Serve(); err != nil {
		return 0, err
	}
	defer s.Close()
	var devs []*sim.Device
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	for i := range c.Devices {
		uid := fmt.Sprintf("bench-%d", i)
		d, err := sim.DialTLS(ctx, addr, bt.clientConfig(), uid, "bench/fleet", "x")
		if err != nil {
			return 0, err
		}
		devs = append(devs, d)
	}
	start := time.Now()
	acked, _, _ := load(ctx, devs, c.loadOpts(nil))
	return float64(acked) / time.Since(start).Seconds(), nil
}

// ackAll admits every login and acknowledges every publish, delivering it
// nowhere.
type ackAll struct{ mqtt.HookBase }

func (*ackAll) ID() string { return "ack-all" }

func (*ackAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish
}

func (*ackAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*ackAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (*ackAll) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, packets.CodeSuccessIgnore
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
