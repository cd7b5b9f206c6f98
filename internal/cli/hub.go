package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cissan/internal/access"
	"cissan/internal/api"
	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/config"
	"cissan/internal/event"
	"cissan/internal/explorer"
	"cissan/internal/hub"
	"cissan/internal/identity"
	"cissan/internal/ledger"
	"cissan/internal/metrics"
	"cissan/internal/registry"
	"cissan/internal/tlsconf"
)

// runHub runs one hub alone: its MQTT broker for devices, its chain copy,
// RabbitMQ to the master, and the registry over HTTP for logins.
func runHub(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	id := fs.String("id", "", "this hub's id, as network.json names it (required)")
	dataDir := fs.String("data-dir", "", "hub.key, chain/ and index.db (default ./data/ID)")
	printKey := fs.Bool("print-key", false, "print this hub's public key (creating its key if needed) and exit; give it to the master operator")
	network := fs.String("network", "", "network.json from the master (GET /v1/network) (required)")
	amqpURL := fs.String("amqp-url", "", "RabbitMQ URL, amqp:// or amqps:// (required)")
	amqpPrefix := fs.String("amqp-prefix", "cissan", "prefix of every RabbitMQ exchange and queue of this network")
	registryURL := fs.String("registry-url", "http://127.0.0.1:8081", "device registry's HTTP API")
	registryToken := fs.String("registry-token-file", "", "not taken: a hub signs its requests to the registry with hub.key, and the operator token stays with operators")
	credTTL := fs.Duration("credential-cache", registry.DefaultCacheTTL, "how long a device's last good login is honoured while the registry is unreachable (0: not at all)")
	mqttAddr := fs.String("mqtt-addr", "127.0.0.1:1883", "MQTT listener for devices (\"\": none, with --mqtts-addr)")
	guards := addGuardFlags(fs)
	httpAddr := fs.String("http-addr", "", "optional HTTP API of this hub's chain copy (empty: none)")
	maxPayload := fs.Int("max-payload", event.DefaultLimits().MaxPayload, "largest event payload accepted, in bytes")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	minFree := addMinFreeDiskFlag(fs)
	amqpTLS := config.AddTLSFlags(fs, "amqp", "RabbitMQ")
	tlsOpts := addServeTLSFlags(fs, true)
	registryCA := fs.String("registry-cacert", "", "PEM CA certificate(s) of an https:// --registry-url signed by a private CA")
	if err := parseRoleFlags(fs, env, args); err != nil {
		return err
	}
	tlsCfg, err := amqpTLS.Config()
	if err != nil {
		return usagef("hub: %v", err)
	}
	if *registryToken != "" {
		return usagef("hub: --registry-token-file is not taken: a hub signs its requests to the registry with its own key (hub.key), which network.json lists; keep the registry's operator token off hub machines")
	}
	switch *id {
	case "":
		return usagef("hub: --id is required")
	case bus.MasterNode, bus.RegistryNode:
		return usagef("hub: --id %q is reserved for the %s", *id, *id)
	}
	if *dataDir == "" {
		*dataDir = filepath.Join("data", *id)
	}
	key, err := identity.LoadOrCreateKey(filepath.Join(*dataDir, "hub.key"))
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	if *credTTL < 0 {
		return usagef("hub: --credential-cache must not be negative (0 turns the cache off)")
	}
	if *printKey {
		fmt.Fprintf(env.Stdout, "%s=%s\n", *id, hex.EncodeToString(pub))
		return nil
	}
	if *network == "" || *amqpURL == "" {
		return usagef("hub: --network and --amqp-url are required")
	}
	netw, err := chain.LoadNetwork(*network)
	if err != nil {
		return err
	}
	if hi := netw.Hub(*id); hi == nil || !hi.PublicKey.Equal(pub) {
		return fmt.Errorf("%s does not enrol hub %q with this hub's key %x (run cissan hub --print-key and give it to the master operator)", *network, *id, []byte(pub))
	}
	log, err := newLogger(env, *logLevel)
	if err != nil {
		return err
	}
	srvTLS, err := tlsOpts.load(ctx, log)
	if err != nil {
		return err
	}
	regHTTP, err := tlsconf.HTTPClientCA("--registry-cacert", *registryCA, 10*time.Second)
	if err != nil {
		return usagef("hub: %v", err)
	}
	if os.Getenv("CISSAN_REGISTRY_TOKEN") != "" {
		log.Warn("CISSAN_REGISTRY_TOKEN is set but not used: the hub signs its registry requests with hub.key; keep the operator token off hub machines")
	}
	signer := &registry.NodeSigner{Network: netw.ID.String(), ID: *id, Key: key}
	lim := event.DefaultLimits()
	lim.MaxPayload = *maxPayload
	led, err := ledger.Open(ctx, ledger.Config{Dir: *dataDir, Network: netw, Limits: lim, Log: log})
	if err != nil {
		return err
	}
	defer led.Close()
	b, err := bus.DialAMQP(ctx, bus.AMQPConfig{URL: *amqpURL, TLS: tlsCfg, Prefix: *amqpPrefix, Node: *id, Log: log})
	if err != nil {
		return fmt.Errorf("--amqp-url: %w", err)
	}
	defer b.Close()
	creds := registry.NewCache(&registry.Client{BaseURL: *registryURL, Node: signer, HTTP: regHTTP}, *credTTL)
	creds.Log = log
	mets := metrics.New()
	disk, err := watchDisk(*dataDir, minFree, log, mets, *id)
	if err != nil {
		return err
	}
	h, err := hub.New(hub.Config{ID: *id, Key: key, Ledger: led, Registry: creds, Bus: b, MQTTAddr: *mqttAddr, MQTTSAddr: tlsOpts.mqttsAddr(),
		TLS: srvTLS.MQTT(), Guards: *guards, Log: log, Metrics: mets.Hub(*id), Disk: disk})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); h.Close(); wg.Wait() }()
	if err := h.Start(ctx); err != nil {
		return fmt.Errorf("%w (change --mqtt-addr)", err)
	}
	run(func() { _ = b.ConsumeBlocks(ctx, *id, h.HandleBlock) })
	run(func() { disk.Run(ctx) })
	run(func() { _ = b.ConsumeValidations(ctx, *id, h.HandleValidation) })
	run(func() {
		_ = b.ConsumeDeviceChanges(ctx, *id, func(uid string) {
			creds.Invalidate(uid)
			h.DeviceChanged(uid)
		})
	})
	if *httpAddr != "" {
		token, err := registry.LoadOrCreateOperatorToken(filepath.Join(*dataDir, "admin.token"))
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		node := map[string]string{"node": *id}
		mets.GaugeFunc("cissan_chain_height", "Blocks in the node's chain.", node, func() float64 { return float64(led.Height()) })
		mets.GaugeFunc("cissan_indexed_height", "Blocks the node has indexed for search; the index trails the chain by the time it takes to index a block.", node, func() float64 { return float64(led.IndexedHeight()) })
		mets.GaugeFunc("cissan_pool_events", "Events waiting for a block.", node, func() float64 { return float64(h.PoolSize()) })
		mux.Handle("GET /metrics", mets.Handler())
		// This hub's operator token reads everything; read tokens are
		// checked with the registry, whose answers are kept 30 s.
		sessions := access.NewSessions(0, 0, nil) // explorer sign-ins, honoured by the API too
		resolve := sessions.Resolver(registry.RemoteResolver(&registry.Client{BaseURL: *registryURL, Node: signer, HTTP: regHTTP}, token, 30*time.Second))
		api.Handler(api.Config{Ledger: led, Pending: h.Pending, Authorize: registry.OperatorAuth(token), Access: resolve, Log: log}, mux)
		stop, err := serveWithExplorer(ctx, *httpAddr, srvTLS, mux, run, explorer.Config{Ledger: led, Access: resolve, Sessions: sessions, Metrics: mets, Pending: h.Pending, Log: log,
			Status: func(context.Context) map[string]any {
				return map[string]any{"nodes": []map[string]any{{"id": *id, "role": "hub", "height": led.Height(), "pool": h.PoolSize(), "disk": disk.Status()}}}
			}})
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("hub up", "hub", *id, "mqtt", h.MQTTAddr(), "mqtts", h.MQTTSAddr(), "network_id", netw.ID.String(), "data_dir", *dataDir)
	fmt.Fprintf(env.Stdout, "cissan hub %s is up: MQTT %s, network %s\n", *id, describeMQTT([]string{h.MQTTAddr()}, []string{h.MQTTSAddr()}), netw.ID)
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}
