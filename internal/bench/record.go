package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
)

// record is the load's list of acknowledged publishes, kept in an unlinked
// temporary file rather than in memory. A minute at 36,000 events/s is 2.2
// million samples, 70 MB: in the heap they counted about twice against
// the process's peak RSS, which is the network's figure (once as
// themselves, once more as the garbage collector's headroom over its live
// heap), and they grew with the run, where the network's memory must stay
// flat.
type record struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	n   int
	err error // the first write error; add keeps counting
}

// sampleBytes is a sample's size in the file.
const sampleBytes = 32

func newRecord() (*record, error) {
	f, err := os.CreateTemp("", "cissan-bench-record-")
	if err != nil {
		return nil, fmt.Errorf("bench record: %w", err)
	}
	// Unlinked at once: the file goes when it is closed or the bench ends.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench record: %w", err)
	}
	return &record{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// add appends s.
func (r *record) add(s sample) {
	var b [sampleBytes]byte
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(s.dev))
	le.PutUint32(b[4:], uint32(s.seq))
	le.PutUint64(b[8:], uint64(s.ms))
	le.PutUint64(b[16:], uint64(s.sent))
	le.PutUint32(b[24:], uint32(s.ackUs))
	le.PutUint32(b[28:], uint32(s.size))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		_, r.err = r.w.Write(b[:])
	}
	r.n++
}

// each calls fn with every sample, in the order they were added, and
// stops at fn's first error.
func (r *record) each(fn func(s sample) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = r.w.Flush()
	}
	if r.err != nil {
		return fmt.Errorf("bench record: %w", r.err)
	}
	rd := bufio.NewReaderSize(io.NewSectionReader(r.f, 0, int64(r.n)*sampleBytes), 1<<20)
	var b [sampleBytes]byte
	le := binary.LittleEndian
	for range r.n {
		if _, err := io.ReadFull(rd, b[:]); err != nil {
			return fmt.Errorf("bench record: %w", err)
		}
		s := sample{
			dev: int32(le.Uint32(b[0:])), seq: int32(le.Uint32(b[4:])),
			ms: int64(le.Uint64(b[8:])), sent: int64(le.Uint64(b[16:])),
			ackUs: int32(le.Uint32(b[24:])), size: int32(le.Uint32(b[28:])),
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

func (r *record) close() error { return r.f.Close() }
