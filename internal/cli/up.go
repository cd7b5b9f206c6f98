package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/event"
	"cissan/internal/local"
)

// rangeFlags collects repeated --range rules.
type rangeFlags []analyze.RangeRule

func (r *rangeFlags) String() string { return fmt.Sprint(len(*r), " rules") }

func (r *rangeFlags) Set(s string) error {
	rule, err := analyze.ParseRangeRule(s)
	if err != nil {
		return err
	}
	*r = append(*r, rule)
	return nil
}

func newLogger(env Env, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: want debug, info, warn or error")
	}
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func runUp(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "directory for every store, keys, network.json and admin.token")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "HTTP API address")
	mqttAddr := fs.String("mqtt-addr", "127.0.0.1:1883", "first hub's MQTT address; further hubs take the next ports (\"\": no plain listener)")
	guards := addGuardFlags(fs)
	tlsOpts := addServeTLSFlags(fs, true)
	hubs := fs.Int("hubs", 2, "number of hub nodes")
	interval := fs.Duration("block-interval", time.Second, "time between blocks")
	maxPayload := fs.Int("max-payload", event.DefaultLimits().MaxPayload, "largest event payload accepted, in bytes")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	minFree := addMinFreeDiskFlag(fs)
	var rules rangeFlags
	fs.Var(&rules, "range", "range rule [org/group:]key=min:max tagging out_of_range values (repeatable; default temperature=-40:85 and humidity=0:100)")
	analyzersFile := fs.String("analyzers", "", "analyzer configuration JSON for a new chain's first block (see docs/analyzers.md); instead of --range")
	anchorOpts := addAnchorFlags(fs)
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *hubs < 1 {
		return usagef("--hubs must be at least 1")
	}
	if *interval < 10*time.Millisecond {
		return usagef("--block-interval must be at least 10ms")
	}
	if *maxPayload < 256 {
		return usagef("--max-payload must be at least 256 bytes")
	}
	log, err := newLogger(env, *logLevel)
	if err != nil {
		return err
	}
	initial, err := initialAnalyzers(*analyzersFile, rules)
	if err != nil {
		return err
	}
	anc, err := anchorOpts.config(*dataDir)
	if err != nil {
		return err
	}
	lim := event.DefaultLimits()
	lim.MaxPayload = *maxPayload
	srvTLS, err := tlsOpts.load(ctx, log)
	if err != nil {
		return err
	}
	n, err := local.Start(ctx, local.Config{
		DataDir: *dataDir, HTTPAddr: *httpAddr, MQTTAddr: *mqttAddr, MQTTSAddr: tlsOpts.mqttsAddr(), TLS: srvTLS, Hubs: *hubs,
		BlockInterval: *interval, Limits: lim, Analyzers: initial, Anchor: anc, Guards: *guards, Log: log,
		Disk: local.DiskConfig{MinFree: uint64(*minFree)},
	})
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(*dataDir)
	fmt.Fprintf(env.Stdout, "cissan is up: network %s\n  API        %s\n  MQTT hubs  %s\n  token      %s\n  network    %s\n  anchoring  %s\nPress Ctrl-C to stop.\n",
		n.Net.ID, n.APIURL, describeMQTT(n.MQTTAddrs(), n.MQTTSAddrs()),
		filepath.Join(abs, "admin.token"), filepath.Join(abs, "network.json"), describeAnchor(n.Anchor))
	<-ctx.Done()
	log.Info("shutting down")
	return n.Close()
}
