package diskspace

import (
	"fmt"
	"strconv"
	"strings"

	"cissan/internal/metrics"
)

// units are the suffixes ParseSize accepts, largest first so that "MiB"
// is not read as "B".
var units = []struct {
	suffix string
	bytes  uint64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"B", 1},
}

// ParseSize reads a size in bytes: a whole number with an optional unit,
// binary (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB, TB, B): "512MiB",
// "1GiB", "0".
func ParseSize(s string) (uint64, error) {
	num, mult := strings.TrimSpace(s), uint64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.bytes
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a whole number of bytes with an optional unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	if n != 0 && n*mult/mult != n {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// FormatSize writes a size with the largest binary unit that divides it,
// or in MiB with a decimal when none does: "512MiB", "1.5GiB" reads back
// as an approximation only, which is all a log needs.
func FormatSize(n uint64) string {
	for _, u := range units[:4] {
		if n >= u.bytes && n%u.bytes == 0 {
			return strconv.FormatUint(n/u.bytes, 10) + u.suffix
		}
	}
	if n >= 1<<20 {
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "MiB"
	}
	return strconv.FormatUint(n, 10) + "B"
}

// Size is a flag.Value holding a size in bytes, parsed by ParseSize.
type Size uint64

func (s *Size) String() string { return FormatSize(uint64(*s)) }

// Set parses v with ParseSize.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// RegisterMetrics adds the watcher's gauges for node to m: the free bytes
// at the last reading and whether they were below the threshold. A nil
// watcher registers nothing.
func (w *Watcher) RegisterMetrics(m *metrics.Metrics, node string) {
	if w == nil || m == nil {
		return
	}
	l := map[string]string{"node": node}
	m.GaugeFunc("cissan_disk_free_bytes", "Free bytes on the filesystem of the node's data, at the last reading (every half second).",
		l, func() float64 { return float64(w.FreeBytes()) })
	m.GaugeFunc("cissan_disk_low", "1 while the node's free disk space is below --min-free-disk and it refuses new events, else 0.",
		l, func() float64 {
			if w.Low() {
				return 1
			}
			return 0
		})
}
