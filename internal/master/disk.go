package master

import (
	"fmt"

	"cissan/internal/bus"
)

// DiskGuard says whether the master's disk has room for more: nil, or why
// not (diskspace.Watcher is one).
type DiskGuard interface {
	Err() error
}

// diskRefusal refuses a hub's batch while the master's free disk space is
// below its threshold. The hub keeps the batch's events in its own pool
// and sends them again, so nothing is lost; the refusal is counted, and
// logged by the watcher once per change, not per batch.
func (m *Master) diskRefusal(b *bus.Batch) error {
	if m.cfg.Disk == nil {
		return nil
	}
	err := m.cfg.Disk.Err()
	if err == nil {
		return nil
	}
	m.cfg.Metrics.Refused("batch", "disk_low")
	return fmt.Errorf("master refuses batch %d from %s: %w", b.Seq, b.HubID, err)
}

// mintPaused reports whether minting waits for disk space, logging once
// when it starts waiting and once when it resumes. A block adds its
// entries, uid records and index rows to the master's disk: while space is
// low, submissions stay in the durable pool instead.
func (m *Master) mintPaused(paused *bool) bool {
	var err error
	if m.cfg.Disk != nil {
		err = m.cfg.Disk.Err()
	}
	switch {
	case err != nil && !*paused:
		m.log.Warn("minting paused until disk space is freed", "err", err, "pool", m.PoolSize())
	case err == nil && *paused:
		m.log.Info("minting resumed", "pool", m.PoolSize())
	}
	*paused = err != nil
	return *paused
}
