package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
)

// ErrFailed is wrapped by every write to a store after a write that
// Pebble cannot take back failed: its write-ahead log or its MANIFEST
// could not be written, for lack of disk space most likely. The store
// still reads, but refuses every write until the node opens it again
// (restarts), which replays what reached the disk.
var ErrFailed = errors.New("store failed")

// failure remembers the first such write, and logs it once.
type failure struct {
	err  atomic.Pointer[error]
	log  *slog.Logger
	done chan struct{} // closed at the failure
	// wedged: Pebble was stopped in the middle of a write (see
	// pebbleLogger and Store.write) and its databases cannot be closed.
	wedged atomic.Bool
}

func newFailure(log *slog.Logger) *failure { return &failure{log: log, done: make(chan struct{})} }

// set records err as the store's failure unless one is recorded already.
func (f *failure) set(err error) {
	if !f.err.CompareAndSwap(nil, &err) {
		return
	}
	close(f.done)
	if f.log != nil {
		f.log.Error("store failed; it refuses every write until the node restarts (free disk space first if it is full)", "err", err)
	}
}

// get returns the store's failure, or nil.
func (f *failure) get() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// failedError is a failed write: it wraps ErrFailed and, when known, the
// cause (syscall.ENOSPC for a full disk).
type failedError struct {
	msg   string
	cause error
}

func (e *failedError) Error() string { return "store failed: " + e.msg }

func (e *failedError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrFailed}
	}
	return []error{ErrFailed, e.cause}
}

// pebbleLogger is the Logger of a store's Pebble databases. Pebble calls
// Fatalf for states it does not recover from and expects the process to
// end. Two of them are failed writes, not bugs, and Fatalf records them as
// the store's failure so that the process lives on and every write fails
// with ErrFailed (see Store.write):
//
//   - A write-ahead log that could not be written ("pebble: fatal commit
//     error", in the goroutine of the commit, which then returns as if it
//     had succeeded): Fatalf returns, and Store.write reports the failure.
//   - A MANIFEST that could not be written, in a flush or a compaction on
//     a goroutine of Pebble's own: if Fatalf returned, Pebble would retry
//     the flush at once, forever, from a state it does not expect (with
//     its invariants checked, it panics). Fatalf ends that goroutine
//     instead (runtime.Goexit, which releases Pebble's locks on the way
//     out), and the store's databases are left open until the process
//     ends: Pebble would wait for the ended flush to close them.
//
// Anything else is a broken invariant, and panics.
type pebbleLogger struct{ f *failure }

func (pebbleLogger) Infof(string, ...any)  {}
func (pebbleLogger) Errorf(string, ...any) {}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(msg, "pebble: fatal commit error") && !strings.HasPrefix(msg, "MANIFEST") {
		panic(msg)
	}
	var cause error
	for _, a := range args {
		if err, ok := a.(error); ok {
			cause = err
		}
	}
	// Wedged before failed: whoever sees the failure must see this too.
	stop := strings.HasPrefix(msg, "MANIFEST") && inBackgroundJob()
	if stop {
		l.f.wedged.Store(true)
	}
	l.f.set(&failedError{msg: msg, cause: cause})
	if stop {
		runtime.Goexit()
	}
}

// inBackgroundJob reports whether the caller runs in one of Pebble's
// flush or compaction goroutines.
func inBackgroundJob() bool {
	buf := make([]byte, 64<<10)
	st := buf[:runtime.Stack(buf, false)]
	return bytes.Contains(st, []byte("pebble.(*DB).flush(")) || bytes.Contains(st, []byte("pebble.(*DB).compact("))
}

// write runs one Pebble write of the store and returns its error, or the
// store's failure if the write caused one (Pebble's commit returns nil
// after Fatalf) or one came before (the write is then not attempted: a
// Pebble database whose log failed may block or panic on the next one).
// Pebble panics with an error when a failed log cannot be closed to start
// the next (DB.rotateWAL); that too becomes the store's failure.
func (s *Store) write(fn func() error) (err error) {
	if err := s.fail.get(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			cause, ok := r.(error)
			if !ok {
				panic(r)
			}
			s.fail.wedged.Store(true)
			s.fail.set(&failedError{msg: cause.Error(), cause: cause})
			err = s.fail.get()
		}
	}()
	err = fn()
	if ferr := s.fail.get(); ferr != nil {
		return ferr
	}
	return err
}

// FailedC is closed when the store fails.
func (s *Store) FailedC() <-chan struct{} { return s.fail.done }

// Failed returns the store's failure (wrapping ErrFailed), or nil while
// it takes writes.
func (s *Store) Failed() error { return s.fail.get() }
