package master

import (
	"context"
	"errors"
	"testing"
)

// fakeDisk is a DiskGuard whose answer the test sets.
type fakeDisk struct{ err error }

func (d *fakeDisk) Err() error { return d.err }

var errLow = errors.New("disk space low: 1MiB free")

// While its disk is low the master refuses batches, storing nothing (the
// hub keeps the events and sends them again), and its mint loop mints
// nothing; once space is back it takes the batch and mints.
func TestLowDiskRefusesBatchesAndPausesMinting(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.genesis(t)
	disk := &fakeDisk{err: errLow}
	f.m.cfg.Disk = disk
	b := f.batch(1, submission("u1", 20))
	if _, err := f.m.HandleBatch(context.Background(), b); !errors.Is(err, errLow) {
		t.Fatalf("batch on a low disk: %v; want the disk's error", err)
	}
	if f.m.PoolSize() != 0 || f.m.Pending("u1", "") {
		t.Fatal("a refused batch reached the pool")
	}
	paused := false
	if !f.m.mintPaused(&paused) || !paused {
		t.Fatal("minting not paused on a low disk")
	}
	disk.err = nil
	if f.m.mintPaused(&paused) || paused {
		t.Fatal("minting still paused after space returned")
	}
	if _, err := f.m.HandleBatch(context.Background(), b); err != nil {
		t.Fatalf("the same batch once space is back: %v", err)
	}
	blk, err := f.m.Mint(context.Background())
	if err != nil || blk == nil || len(blk.Entries) != 1 {
		t.Fatalf("mint after space returned: %+v, %v", blk, err)
	}
}
