package local_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/api"
	"cissan/internal/cli"
)

// TestAnalyzerConfigOnChain changes the analyzer configuration through the
// CLI and checks that the chain records it, that it decides the tags from
// the block that carries it on, and that verify data replays it.
func TestAnalyzerConfigOnChain(t *testing.T) {
	dir := t.TempDir()
	tn := startNet(t, dir, 2)
	tokenFile := filepath.Join(dir, "admin.token")
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := cli.Run(t.Context(), args, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	type history struct {
		Current *api.ConfigJSON  `json:"current"`
		History []api.ConfigJSON `json:"history"`
	}
	show := func() history {
		out, err := run("analyzers", "show", "--api", tn.APIURL, "--token-file", tokenFile)
		if err != nil {
			t.Fatalf("analyzers show: %v\n%s", err, out)
		}
		var h history
		if err := json.Unmarshal([]byte(out), &h); err != nil {
			t.Fatalf("analyzers show printed %q: %v", out, err)
		}
		return h
	}
	// The first block records the initial configuration.
	deadline := time.Now().Add(finalDeadline)
	for show().Current == nil {
		if time.Now().After(deadline) {
			t.Fatal("the initial analyzer configuration never reached the chain")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h := show(); h.Current.Height != 0 || !slices.Equal(rules(t, h.Current), analyze.DefaultRangeRules()) {
		t.Fatalf("initial config %s at %d, want the default range rules at height 0", h.Current.Config, h.Current.Height)
	}

	tok := tn.register("cfg-1", "acme/lab")
	dev := tn.dial(0, "cfg-1", "acme/lab", tok)
	publishOK(t, dev, seedEvent("before", "cfg-1", "acme/lab", 50))
	if ev := tn.waitFinal("before"); len(ev.Tags) != 0 {
		t.Fatalf("50 degrees tagged %v under the default rules", tagStrings(ev.Tags))
	}

	// Bad configurations are refused with a reason, and nothing is queued.
	bad := filepath.Join(dir, "bad.json")
	for body, why := range map[string]string{
		`{"range":[{"key":"temperature","min":30,"max":-10}]}`: "min must not exceed max",
		`{"rnage":[]}`: `unknown field "rnage"`,
	} {
		if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := run("analyzers", "set", "--api", tn.APIURL, "--token-file", tokenFile, "--file", bad)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Fatalf("analyzers set %s: %v (%s), want an error saying %q", body, err, out, why)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, tn.APIURL+"/v1/analyzers", strings.NewReader(`{}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /v1/analyzers without a token: %v %v, want 401", resp, err)
	}

	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"range":[{"key":"temperature","min":-10,"max":30}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("analyzers", "set", "--api", tn.APIURL, "--token-file", tokenFile, "--file", good); err != nil {
		t.Fatalf("analyzers set: %v\n%s", err, out)
	}
	for len(show().History) < 2 {
		if time.Now().After(deadline.Add(finalDeadline)) {
			t.Fatal("the new configuration never reached the chain")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h := show()
	if want := []analyze.RangeRule{{Key: "temperature", Min: -10, Max: 30}}; h.Current.Height == 0 || !slices.Equal(rules(t, h.Current), want) {
		t.Fatalf("current config %s at %d, want %v", h.Current.Config, h.Current.Height, want)
	}
	publishOK(t, dev, seedEvent("after", "cfg-1", "acme/lab", 50))
	ev := tn.waitFinal("after")
	if got := tagStrings(ev.Tags); !slices.Equal(got, []string{"range:temperature:out_of_range"}) {
		t.Fatalf("50 degrees under the new rules tagged %v", got)
	}
	if *ev.Height < h.Current.Height {
		t.Fatalf("event at height %d precedes the config at %d", *ev.Height, h.Current.Height)
	}

	// Every node replays the configurations from the chain alone.
	if err := tn.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := run("verify", "data", "--data-dir", dir); err != nil {
		t.Fatalf("verify data: %v\n%s", err, out)
	}
}

func rules(t *testing.T, c *api.ConfigJSON) []analyze.RangeRule {
	t.Helper()
	cfg, err := analyze.ParseConfig(c.Config)
	if err != nil {
		t.Fatalf("config on the chain does not parse: %v", err)
	}
	return cfg.Range
}
