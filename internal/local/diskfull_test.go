package local_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"cissan/internal/analyze"
	"cissan/internal/diskspace"
	"cissan/internal/event"
	"cissan/internal/local"
	"cissan/internal/registry"
	"cissan/internal/store"
)

// tmpfs mounts a tmpfs of size (mount's size=) on a new directory, and
// unmounts it when the test ends. It needs root: without it the test is
// skipped, or fails under CI=true.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mounting a tmpfs needs root, and CI=true")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// publisher is a device sending numbered events over paho, one at a time,
// and recording each PUBACK's reason code by uid.
type publisher struct {
	c      *paho.Client
	dev    string
	ns     string
	mu     sync.Mutex
	acked  []string
	lowRef []string // refused with 0x97 because the hub's disk is low
}

// publish sends event seq and records the outcome; any reason code but
// 0x00 and 0x97 (for low disk space) fails the test.
func (p *publisher) publish(t *testing.T, seq int) byte {
	uid := fmt.Sprintf("%s-%06d", p.dev, seq)
	ev := seedEvent(uid, p.dev, p.ns, 20)
	// Events of about 700 bytes fill the disk sooner.
	ev["items"] = append(ev["items"].([]any), map[string]any{"key": "note", "value": strings.Repeat("x", 400)})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := p.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: "devices/" + p.dev + "/events", Payload: mustJSON(t, ev)})
	if resp == nil {
		t.Errorf("publish %s: no PUBACK: %v", uid, err)
		return 0xff
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case resp.ReasonCode == 0:
		p.acked = append(p.acked, uid)
	case resp.ReasonCode == 0x97 && resp.Properties != nil && strings.Contains(resp.Properties.ReasonString, "disk space low"):
		p.lowRef = append(p.lowRef, uid)
	default:
		reason := ""
		if resp.Properties != nil {
			reason = resp.Properties.ReasonString
		}
		t.Errorf("publish %s: reason code 0x%02x %q", uid, resp.ReasonCode, reason)
	}
	return resp.ReasonCode
}

// TestFullDiskRefusesEventsAndRecovers runs a network on a small tmpfs
// under load from several devices, fills the tmpfs with a file until its
// free space falls below the threshold, and checks that devices get 0x97
// and nothing panics; then it deletes the file and checks that ingestion
// resumes by itself, that every acknowledged event is final exactly once,
// that no refused event is logged, and that `cissan verify data` passes.
//
// The tmpfs is 1 GiB and the threshold 64 MiB, not the 64 MiB and 8 MiB
// one would like: each of a node's Pebble databases reserves 17.6 MiB for
// every write-ahead log it starts (110% of its memtable) and keeps a few
// for reuse, so the two nodes' six databases grow by up to hundreds of
// MiB while they warm up. On a 64 MiB tmpfs that growth alone fills the
// disk, and an 8 MiB reserve is less than one log: a store then fails
// (cleanly, see internal/store/failure_test.go) and needs a restart.
func TestFullDiskRefusesEventsAndRecovers(t *testing.T) {
	mnt := tmpfs(t, "1g")
	dataDir := filepath.Join(mnt, "data")
	const minFree = 64 << 20
	logs := &syncBuffer{}
	n, err := local.Start(t.Context(), local.Config{
		DataDir: dataDir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Hubs: 1,
		BlockInterval: blockInterval, ResubmitAfter: 2 * time.Second, Limits: event.DefaultLimits(),
		Analyzers: analyze.Config{Range: analyze.DefaultRangeRules()},
		Log:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Disk:      local.DiskConfig{MinFree: minFree, Interval: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("start network: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = n.Close()
		}
		if t.Failed() {
			t.Logf("network logs:\n%s", logs.String())
		}
	})
	tn := &testNet{Network: n, t: t, dir: dataDir, reg: &registry.Client{BaseURL: n.APIURL, Token: n.Token}}
	free := func() uint64 {
		f, err := diskspace.Free(mnt)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	t.Logf("free after start: %s", diskspace.FormatSize(free()))

	const devices = 4
	pubs := make([]*publisher, devices)
	for i := range pubs {
		dev := fmt.Sprintf("disk-dev-%d", i)
		tok := tn.register(dev, "acme/disk")
		c, _ := dialWatched(t, n.MQTTAddrs()[0], dev, dev, tok)
		pubs[i] = &publisher{c: c, dev: dev, ns: "acme/disk"}
	}
	// Every device publishes until stop says so: phase 0 until the disk is
	// low and some events were refused, phase 1 until events are acked
	// again after the filler is gone.
	var seqMu sync.Mutex
	seq := 0
	next := func() int { seqMu.Lock(); defer seqMu.Unlock(); seq++; return seq }
	runUntil := func(done func(code byte) bool) {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var once sync.Once
		deadline := time.After(60 * time.Second)
		for _, p := range pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-t.Context().Done():
						return
					default:
					}
					code := p.publish(t, next())
					if code == 0xff || t.Failed() {
						once.Do(func() { close(stop) })
						return
					}
					if done(code) {
						once.Do(func() { close(stop) })
						return
					}
				}
			}()
		}
		select {
		case <-stop:
		case <-deadline:
			once.Do(func() { close(stop) })
			wg.Wait()
			t.Fatal("phase did not end within 60 s")
		}
		wg.Wait()
	}

	// Some load first, then fill the disk to a little above the threshold:
	// the load takes it below.
	runUntil(func(byte) bool { return next() > 2000 })
	filler := filepath.Join(mnt, "filler")
	fillTo(t, filler, func() bool { return free() > minFree+16<<20 })
	if fi, err := os.Stat(filler); err == nil {
		t.Logf("free after filling: %s, filler %s", diskspace.FormatSize(free()), diskspace.FormatSize(uint64(fi.Size())))
	}
	var refusals int
	var refMu sync.Mutex
	runUntil(func(code byte) bool {
		refMu.Lock()
		defer refMu.Unlock()
		if code == 0x97 {
			refusals++
		}
		return refusals >= 50
	})
	if !n.Disk("hub-1").Low() {
		t.Fatal("devices were refused but the hub's disk watcher is not low")
	}
	st := tn.status()
	if !strings.Contains(fmt.Sprint(st["nodes"]), "low:true") {
		t.Fatalf("GET /v1/status does not say the disk is low: %v", st["nodes"])
	}
	resp, err := http.Get(n.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.Contains(string(body), `cissan_disk_low{node="hub-1"} 1`) {
		t.Fatalf("metrics do not show hub-1's disk low (%v)", err)
	}
	t.Logf("free when refusing: %s", diskspace.FormatSize(free()))

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	acksAfter := 0
	runUntil(func(code byte) bool {
		refMu.Lock()
		defer refMu.Unlock()
		if code == 0 {
			acksAfter++
		}
		return acksAfter >= 200
	})

	var acked, refused []string
	for _, p := range pubs {
		for _, uid := range p.acked {
			acked = append(acked, event.ID(uid, p.dev))
		}
		for _, uid := range p.lowRef {
			refused = append(refused, event.ID(uid, p.dev))
		}
	}
	t.Logf("%d events acknowledged, %d refused for low disk space", len(acked), len(refused))
	if got := strings.Count(logs.String(), `msg="disk space low`); got < 1 {
		t.Fatalf("no log line says the disk is low")
	}
	if strings.Contains(logs.String(), "store failed") {
		t.Fatalf("a store failed although the threshold should have kept the disk from filling")
	}
	// Every acknowledged event final, exactly once; no refused event logged.
	deadline := time.Now().Add(30 * time.Second)
	ml := n.Master.Ledger()
	for {
		var missing int
		var lastH uint64
		err := ml.Store().LocateAll(acked, func(i int, locs []store.Located) error {
			switch {
			case len(locs) == 0:
				missing++
			case len(locs) > 1:
				return fmt.Errorf("acknowledged event %s is logged %d times", acked[i], len(locs))
			default:
				lastH = max(lastH, locs[0].Height)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if missing == 0 && ml.FinalHeight() > lastH {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events not logged, or not final (final height %d, need > %d)", missing, len(acked), ml.FinalHeight(), lastH)
		}
		time.Sleep(50 * time.Millisecond)
	}
	err = ml.Store().LocateAll(refused, func(i int, locs []store.Located) error {
		if len(locs) > 0 {
			return fmt.Errorf("refused event %s is logged", refused[i])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tn.waitPoolsEmpty()
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	closed = true
	if out, err := tn.cli("verify", "data", "--data-dir", dataDir); err != nil || !strings.Contains(out, "OK:") {
		t.Fatalf("verify data: %v\n%s", err, out)
	}
}

// fillTo appends to a file a MiB at a time while more is true.
func fillTo(t *testing.T, path string, more func() bool) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for more() {
		if _, err := f.Write(buf); err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
}

// TestLowDiskRefusalsWithInjectedFreeSpace drives the free-space check
// with an injected reading, without root: below the threshold a device's
// event is refused with 0x97 and a reason naming the hub's disk, and not
// stored; once the reading is back above it,
// the same device's next event is acknowledged and becomes final, with
// nothing restarted.
func TestLowDiskRefusalsWithInjectedFreeSpace(t *testing.T) {
	var freeBytes atomic.Uint64
	freeBytes.Store(1 << 30)
	dir := t.TempDir()
	n, err := local.Start(t.Context(), local.Config{
		DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Hubs: 1,
		BlockInterval: blockInterval, ResubmitAfter: 2 * time.Second, Limits: event.DefaultLimits(),
		Disk: local.DiskConfig{MinFree: 100 << 20, Interval: time.Hour, Free: func(string) (uint64, error) { return freeBytes.Load(), nil }},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	tn := &testNet{Network: n, t: t, dir: dir, reg: &registry.Client{BaseURL: n.APIURL, Token: n.Token}}
	tok := tn.register("low-dev", "acme/disk")
	c, _ := dialWatched(t, n.MQTTAddrs()[0], "low-dev", "low-dev", tok)
	p := &publisher{c: c, dev: "low-dev", ns: "acme/disk"}

	freeBytes.Store(10 << 20)
	for _, node := range []string{"master", "hub-1"} {
		if !n.Disk(node).Check() {
			t.Fatalf("%s: 10MiB free below 100MiB is not low", node)
		}
	}
	if code := p.publish(t, 1); code != 0x97 {
		t.Fatalf("event on a low disk: reason code 0x%02x, want 0x97", code)
	}
	if n.Hubs[0].PoolSize() != 0 {
		t.Fatal("a refused event was pooled")
	}
	nodes := fmt.Sprint(tn.status()["nodes"])
	if !strings.Contains(nodes, "low:true") || !strings.Contains(nodes, "free_bytes:10485760") {
		t.Fatalf("GET /v1/status does not report the low disk: %s", nodes)
	}

	freeBytes.Store(1 << 30)
	for _, node := range []string{"master", "hub-1"} {
		if n.Disk(node).Check() {
			t.Fatalf("%s: still low with 1GiB free", node)
		}
	}
	if code := p.publish(t, 2); code != 0 {
		t.Fatalf("event after space returned: reason code 0x%02x, want 0x00", code)
	}
	tn.waitFinal(p.acked[0])
	if _, code := tn.event(p.lowRef[0]); code != http.StatusNotFound {
		t.Fatalf("refused event %s: GET answers %d, want 404", p.lowRef[0], code)
	}
}
