package diskspace

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"cissan/internal/metrics"
)

// fakeFree is a free-space function whose answer the test sets.
type fakeFree struct {
	free atomic.Uint64
	err  atomic.Pointer[error]
}

func (f *fakeFree) read(string) (uint64, error) {
	if e := f.err.Load(); e != nil {
		return 0, *e
	}
	return f.free.Load(), nil
}

func TestWatcherTransitionsLogOnce(t *testing.T) {
	var logs bytes.Buffer
	f := &fakeFree{}
	f.free.Store(100 << 20)
	w, err := New(Config{Dir: "/data", Min: 64 << 20, Free: f.read, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if w.Low() || w.Err() != nil {
		t.Fatalf("100MiB free, 64MiB min: low=%v err=%v", w.Low(), w.Err())
	}
	f.free.Store(10 << 20)
	for range 5 {
		if !w.Check() {
			t.Fatal("10MiB free below 64MiB: Check says not low")
		}
	}
	err = w.Err()
	if !errors.Is(err, ErrLow) || !strings.Contains(err.Error(), "10MiB free, below the minimum of 64MiB") {
		t.Fatalf("Err() = %v", err)
	}
	if w.FreeBytes() != 10<<20 {
		t.Fatalf("FreeBytes = %d", w.FreeBytes())
	}
	f.free.Store(64 << 20) // exactly the minimum is enough
	for range 3 {
		if w.Check() {
			t.Fatal("64MiB free, 64MiB min: still low")
		}
	}
	if got := strings.Count(logs.String(), "disk space low"); got != 1 {
		t.Fatalf("%d 'disk space low' lines, want 1:\n%s", got, logs.String())
	}
	if got := strings.Count(logs.String(), "disk space recovered"); got != 1 {
		t.Fatalf("%d 'disk space recovered' lines, want 1:\n%s", got, logs.String())
	}
}

func TestWatcherKeepsLastReadingOnError(t *testing.T) {
	var logs bytes.Buffer
	f := &fakeFree{}
	f.free.Store(1 << 20)
	w, err := New(Config{Dir: "/data", Min: 2 << 20, Free: f.read, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := errors.New("statfs: input/output error")
	f.err.Store(&e)
	if !w.Check() || !w.Check() {
		t.Fatal("a failed reading forgot that space was low")
	}
	if got := strings.Count(logs.String(), "cannot read free disk space"); got != 1 {
		t.Fatalf("%d error lines, want 1:\n%s", got, logs.String())
	}
}

func TestNewFailsOnUnreadableDir(t *testing.T) {
	if _, err := New(Config{Dir: t.TempDir() + "/missing", Min: 1}); err == nil {
		t.Fatal("New of a missing dir succeeded")
	}
}

func TestDisabledWatcherIsNil(t *testing.T) {
	w, err := New(Config{Dir: "/nonexistent", Min: 0})
	if err != nil || w != nil {
		t.Fatalf("New with Min 0 = %v, %v; want nil, nil", w, err)
	}
	if w.Check() || w.Low() || w.Err() != nil || w.FreeBytes() != 0 || w.Status() != nil {
		t.Fatal("nil watcher reports low space")
	}
	w.Run(context.Background()) // returns at once
	w.RegisterMetrics(metrics.New(), "hub-1")
}

func TestFreeReadsRealFilesystem(t *testing.T) {
	n, err := Free(t.TempDir())
	if err != nil || n == 0 {
		t.Fatalf("Free(tempdir) = %d, %v", n, err)
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"0", 0}, {"512MiB", 512 << 20}, {"1GiB", 1 << 30}, {"8MiB", 8 << 20}, {"100", 100},
		{"4KiB", 4096}, {"2 GB", 2e9}, {"10MB", 10e6}, {"7B", 7}, {"1TiB", 1 << 40},
	} {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5GiB", "ten", "1XB", "99999999999TiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 512 << 20: "512MiB", 1 << 30: "1GiB", 3 << 19: "1536KiB", 3<<19 + 1: "1.5MiB", 1000: "1000B", 2048: "2KiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	f := &fakeFree{}
	f.free.Store(1 << 20)
	w, err := New(Config{Dir: "/data", Min: 2 << 20, Free: f.read})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	w.RegisterMetrics(m, "hub-1")
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range fams {
		for _, mt := range fam.GetMetric() {
			got[fam.GetName()] = mt.GetGauge().GetValue()
		}
	}
	if got["cissan_disk_free_bytes"] != 1<<20 || got["cissan_disk_low"] != 1 {
		t.Fatalf("gauges = %v", got)
	}
}
