package cli

import (
	"flag"
	"log/slog"

	"cissan/internal/diskspace"
	"cissan/internal/metrics"
)

// addMinFreeDiskFlag defines --min-free-disk, by default
// diskspace.DefaultMin (512 MiB): the room a node keeps, once it refuses
// new events, for what it has already accepted, mostly the 17.6 MiB
// write-ahead logs Pebble starts for each of its databases (see
// docs/operations.md, "Disk space"); RabbitMQ's disk_free_limit serves
// the same purpose.
func addMinFreeDiskFlag(fs *flag.FlagSet) *diskspace.Size {
	s := diskspace.Size(diskspace.DefaultMin)
	fs.Var(&s, "min-free-disk", "refuse new events (PUBACK 0x97) and pause minting while the data dir's filesystem has less free space than this: 512MiB, 1GiB, ... (0: never)")
	return &s
}

// watchDisk starts watching dir's free space for node, with the node's
// disk metrics; its Run is the caller's to start. It returns nil, a
// watcher that never reports low space, for a threshold of 0.
func watchDisk(dir string, min *diskspace.Size, log *slog.Logger, mets *metrics.Metrics, node string) (*diskspace.Watcher, error) {
	w, err := diskspace.New(diskspace.Config{Dir: dir, Min: uint64(*min), Log: log.With("node", node)})
	if err != nil {
		return nil, usagef("--min-free-disk: %v", err)
	}
	w.RegisterMetrics(mets, node)
	return w, nil
}
