package local

import (
	"context"
	"time"

	"cissan/internal/diskspace"
)

// DiskConfig sets the free-space threshold of every node (see
// internal/diskspace); the zero value watches nothing.
type DiskConfig struct {
	MinFree  uint64                           // bytes; 0 turns the check off
	Interval time.Duration                    // default diskspace.DefaultInterval
	Free     func(dir string) (uint64, error) // default diskspace.Free; for tests
}

// watchDisk starts the watcher of node's directory dir, registers its
// metrics and remembers it for the status page. It returns nil (a watcher
// that never reports low space) when the threshold is 0.
func (n *Network) watchDisk(ctx context.Context, node, dir string) (*diskspace.Watcher, error) {
	c := n.cfg.Disk
	w, err := diskspace.New(diskspace.Config{Dir: dir, Min: c.MinFree, Interval: c.Interval, Free: c.Free, Log: n.cfg.Log.With("node", node)})
	if err != nil || w == nil {
		return nil, err
	}
	if n.disks == nil {
		n.disks = map[string]*diskspace.Watcher{}
	}
	n.disks[node] = w
	w.RegisterMetrics(n.Metrics, node)
	n.goRun(func() { w.Run(ctx) })
	return w, nil
}

// Disk returns the free-space watcher of node ("master", "hub-1", ...), or
// nil if it has none.
func (n *Network) Disk(node string) *diskspace.Watcher { return n.disks[node] }

// addDiskStatus adds each node's disk to its status entry.
func (n *Network) addDiskStatus(nodes []map[string]any) {
	for _, nd := range nodes {
		if id, _ := nd["id"].(string); n.disks[id] != nil {
			nd["disk"] = n.disks[id].Status()
		}
	}
}
