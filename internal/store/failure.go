package store

import (
	"errors"
	"fmt"
	"log/slog"
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
// end. Two of them are failed writes, not bugs: a write-ahead log that
// could not be written ("pebble: fatal commit error", after which the
// commit returns as if it had succeeded) and a MANIFEST that could not be
// (in a flush or a compaction, on a goroutine of Pebble's own). For those
// Fatalf records the store's failure and returns, so that the process
// lives on and every write, this one included (see Store.write), fails
// with ErrFailed. Anything else is a broken invariant, and panics.
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
	l.f.set(&failedError{msg: msg, cause: cause})
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
			s.wedged.Store(true)
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
