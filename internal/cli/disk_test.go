package cli

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cissan/internal/config"
	"cissan/internal/diskspace"
)

// --min-free-disk takes sizes from the command line, CISSAN_MIN_FREE_DISK
// and the config file, in that order, defaults to 512MiB, and names
// where a bad value came from.
func TestMinFreeDiskFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hub.json")
	if err := os.WriteFile(file, []byte(`{"min-free-disk": "2GiB"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(env map[string]string, args ...string) (uint64, error) {
		fs := flag.NewFlagSet("hub", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String(config.ConfigFlag, "", "")
		v := addMinFreeDiskFlag(fs)
		_, err := config.Load(fs, args, func(k string) string { return env[k] })
		return uint64(*v), err
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want uint64
	}{
		{"default", nil, nil, diskspace.DefaultMin},
		{"flag", nil, []string{"--min-free-disk", "1GiB"}, 1 << 30},
		{"off", nil, []string{"--min-free-disk=0"}, 0},
		{"env", map[string]string{"CISSAN_MIN_FREE_DISK": "256MiB"}, nil, 256 << 20},
		{"file", nil, []string{"--config", file}, 2 << 30},
		{"flag beats env", map[string]string{"CISSAN_MIN_FREE_DISK": "256MiB"}, []string{"--min-free-disk", "8MiB"}, 8 << 20},
	} {
		got, err := parse(c.env, c.args...)
		if err != nil || got != c.want {
			t.Errorf("%s: %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	if _, err := parse(map[string]string{"CISSAN_MIN_FREE_DISK": "lots"}); err == nil || !strings.Contains(err.Error(), "CISSAN_MIN_FREE_DISK") {
		t.Errorf("bad environment value: %v; want an error naming CISSAN_MIN_FREE_DISK", err)
	}
	if _, err := parse(nil, "--min-free-disk", "-5MiB"); err == nil {
		t.Error("negative size accepted")
	}
}
