package store

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"
)

// fullDisk wraps an in-memory filesystem whose writes to files whose name
// ends in one of the suffixes fail with ENOSPC while full is set.
func fullDisk(full *atomic.Bool, suffixes ...string) vfs.FS {
	return errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if !full.Load() || op.OpKind() != errorfs.OpKindWrite {
			return nil
		}
		for _, s := range suffixes {
			if strings.Contains(path, s) {
				return syscall.ENOSPC
			}
		}
		return nil
	}))
}

func poolPut(s *Store, uid string) error {
	b := s.NewBatch()
	defer b.Close()
	if err := b.PutPool(uid, 0, []byte("x")); err != nil {
		return err
	}
	return b.Commit()
}

// A write-ahead log that cannot be written (a full disk) makes Pebble call
// Fatalf and then return from the commit as if it had succeeded. The store
// must report the failure to that commit and refuse every later write,
// without a panic; what was durable before survives a reopen, and the
// failed write does not.
func TestFullDiskFailsWritesWithoutPanic(t *testing.T) {
	var full atomic.Bool
	fs := fullDisk(&full, ".log")
	var logs bytes.Buffer
	s, err := Open("db", Options{FS: fs, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := poolPut(s, "before"); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	err = poolPut(s, "lost")
	if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("commit on a full disk: %v; want ErrFailed and ENOSPC", err)
	}
	if !errors.Is(s.Failed(), ErrFailed) {
		t.Fatalf("Failed() = %v", s.Failed())
	}
	// Later writes are refused even once space is back: the log is broken.
	full.Store(false)
	for range 3 {
		if err := poolPut(s, "after"); !errors.Is(err, ErrFailed) {
			t.Fatalf("write after the failure: %v; want ErrFailed", err)
		}
	}
	b := s.NewBlockBatch(testBlock(0, "e0"))
	if err := b.PutBlock(testBlock(0, "e0"), []string{"u0"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); !errors.Is(err, ErrFailed) {
		t.Fatalf("block write after the failure: %v; want ErrFailed", err)
	}
	b.Close()
	if _, err := s.Pool("before"); err != nil {
		t.Fatalf("a failed store still reads: %v", err)
	}
	if got := strings.Count(logs.String(), "level=ERROR"); got != 1 {
		t.Fatalf("%d log lines about the failure, want 1:\n%s", got, logs.String())
	}
	if err := s.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close of a failed store: %v; want its failure", err)
	}

	s, err = Open("db", Options{FS: fs})
	if err != nil {
		t.Fatalf("reopen after the disk was freed: %v", err)
	}
	defer s.Close()
	if _, err := s.Pool("before"); err != nil {
		t.Fatalf("durable record lost: %v", err)
	}
	if _, err := s.Pool("lost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record of the failed write: %v; want ErrNotFound", err)
	}
	if h, err := s.Height(); err != nil || h != 0 {
		t.Fatalf("height %d, %v after a refused block", h, err)
	}
	if err := poolPut(s, "again"); err != nil {
		t.Fatalf("write after reopening: %v", err)
	}
}

// A MANIFEST that cannot be written, in a flush Pebble runs on its own
// goroutine, fails the store too, without a panic, and without the flush
// being retried in a loop from a state Pebble does not expect (with the
// race detector on, Pebble checks its invariants and would panic).
func TestFullDiskInFlushFailsStore(t *testing.T) {
	var full atomic.Bool
	fs := fullDisk(&full, "MANIFEST")
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := poolPut(s, "a"); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	if _, err := s.pool.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.FailedC():
	case <-time.After(10 * time.Second):
		t.Fatal("a flush whose MANIFEST write failed did not fail the store")
	}
	if !errors.Is(s.Failed(), ErrFailed) || !errors.Is(s.Failed(), syscall.ENOSPC) {
		t.Fatalf("Failed() = %v; want ErrFailed and ENOSPC", s.Failed())
	}
	if err := poolPut(s, "b"); !errors.Is(err, ErrFailed) {
		t.Fatalf("write after the failed flush: %v", err)
	}
	// Close returns at once: Pebble's databases stay open (and locked)
	// until the process ends, since the flush that failed never finishes.
	if err := s.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close: %v", err)
	}
}
