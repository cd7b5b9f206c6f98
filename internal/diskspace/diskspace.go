// Package diskspace watches the free space of the filesystem that holds a
// node's data, so that the node can refuse new work while it is below a
// threshold instead of filling the disk.
//
// A full disk is the one failure a store cannot absorb: Pebble treats a
// write-ahead log that cannot be written as fatal, and SQLite turns its
// transactions away. As RabbitMQ does with its disk_free_limit, a node
// checks the free space before it accepts work, and keeps the space left
// under the threshold for what it has already accepted: flushing its
// memtables, compacting, storing and indexing blocks.
//
// A Watcher reads the free space every Interval (a statfs call, about a
// microsecond) and on demand (Check). Its readers (Low, Err) read only an
// atomic value, so they cost nothing on the per-event path. It logs one
// line when the space falls below the threshold and one when it is back,
// never one per refusal.
package diskspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrLow is the error of work refused because the node's disk has less
// free space than its threshold.
var ErrLow = errors.New("disk space low")

// DefaultMin is the threshold nodes use unless configured: room, beyond
// what is accepted, for what a node still writes. Most of it is Pebble's
// write-ahead logs: each of a node's three databases reserves 17.6 MiB
// (110% of its memtable) for every log it starts, at each memtable
// rotation and at the flush of a shutdown; then the tables a flush or
// compaction writes before it deletes the ones they replace, and the
// index; for the three nodes `cissan up` keeps on one disk.
const DefaultMin = 512 << 20

// DefaultInterval is how often a Watcher reads the free space.
const DefaultInterval = 500 * time.Millisecond

// Free returns the bytes available to this process on the filesystem that
// holds dir (statfs's f_bavail: root's reserved blocks do not count).
func Free(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Config configures a Watcher.
type Config struct {
	Dir      string
	Min      uint64                           // threshold in bytes; 0 turns the watcher off
	Interval time.Duration                    // default DefaultInterval
	Free     func(dir string) (uint64, error) // default Free; tests inject their own
	Log      *slog.Logger                     // nil logs nothing
}

// Watcher tracks whether a directory's filesystem has less free space than
// a threshold. The methods of a nil *Watcher report plenty of space.
type Watcher struct {
	cfg  Config
	free atomic.Uint64
	low  atomic.Bool
	mu   sync.Mutex // serialises reads of the free space and the logs they cause
	serr error      // the last statfs error, logged once
}

// New returns a watcher of cfg.Dir and reads the free space once; it
// returns nil, a watcher that never reports low space, when cfg.Min is 0.
func New(cfg Config) (*Watcher, error) {
	if cfg.Min == 0 {
		return nil, nil
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Free == nil {
		cfg.Free = Free
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{cfg: cfg}
	if _, err := cfg.Free(cfg.Dir); err != nil {
		return nil, fmt.Errorf("free disk space: %w", err)
	}
	w.Check()
	return w, nil
}

// Run reads the free space every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	if w == nil {
		return
	}
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}

// Check reads the free space now and reports whether it is below the
// threshold. If it cannot be read, the last reading stands.
func (w *Watcher) Check() bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	free, err := w.cfg.Free(w.cfg.Dir)
	if err != nil {
		if w.serr == nil {
			w.cfg.Log.Error("cannot read free disk space", "dir", w.cfg.Dir, "err", err)
		}
		w.serr = err
		return w.low.Load()
	}
	w.serr = nil
	w.free.Store(free)
	low := free < w.cfg.Min
	if w.low.Swap(low) != low {
		if low {
			w.cfg.Log.Warn("disk space low: refusing new events until space is freed",
				"dir", w.cfg.Dir, "free", FormatSize(free), "min_free_disk", FormatSize(w.cfg.Min))
		} else {
			w.cfg.Log.Info("disk space recovered: accepting events again",
				"dir", w.cfg.Dir, "free", FormatSize(free), "min_free_disk", FormatSize(w.cfg.Min))
		}
	}
	return low
}

// Low reports whether the last reading was below the threshold.
func (w *Watcher) Low() bool { return w != nil && w.low.Load() }

// FreeBytes returns the last reading of the free space (0 for a nil watcher).
func (w *Watcher) FreeBytes() uint64 {
	if w == nil {
		return 0
	}
	return w.free.Load()
}

// Min returns the threshold (0 for a nil watcher).
func (w *Watcher) Min() uint64 {
	if w == nil {
		return 0
	}
	return w.cfg.Min
}

// Err returns nil while there is space, and an error wrapping ErrLow that
// says how much is left while there is not.
func (w *Watcher) Err() error {
	if !w.Low() {
		return nil
	}
	return fmt.Errorf("%w: %s free, below the minimum of %s", ErrLow, FormatSize(w.FreeBytes()), FormatSize(w.cfg.Min))
}

// Status is what a node's status page says about its disk.
func (w *Watcher) Status() map[string]any {
	if w == nil {
		return nil
	}
	return map[string]any{"free_bytes": w.FreeBytes(), "min_free_bytes": w.cfg.Min, "low": w.Low()}
}
