package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"cissan/internal/access"
	"cissan/internal/analyze"
	"cissan/internal/anchor"
	"cissan/internal/api"
	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/config"
	"cissan/internal/event"
	"cissan/internal/explorer"
	"cissan/internal/httpserver"
	"cissan/internal/identity"
	"cissan/internal/ledger"
	"cissan/internal/master"
	"cissan/internal/metrics"
	"cissan/internal/registry"
	"cissan/internal/tlsconf"
)

// hubFlags collects repeated --hub id=PUBLIC_KEY_HEX.
type hubFlags []chain.HubInfo

func (h *hubFlags) String() string { return fmt.Sprint(len(*h), " hubs") }

func (h *hubFlags) Set(s string) error {
	id, key, ok := strings.Cut(s, "=")
	if !ok || id == "" {
		return errors.New("want id=PUBLIC_KEY_HEX (cissan hub --print-key shows a hub's key)")
	}
	if id == bus.MasterNode || id == bus.RegistryNode {
		return fmt.Errorf("hub id %q is reserved", id)
	}
	b, err := hex.DecodeString(key)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return fmt.Errorf("hub %s: public key must be %d hex-encoded bytes", id, ed25519.PublicKeySize)
	}
	for _, o := range *h {
		if o.ID == id {
			return fmt.Errorf("hub %s given twice", id)
		}
	}
	*h = append(*h, chain.HubInfo{ID: id, PublicKey: b})
	return nil
}

// runMaster runs the master node alone, talking to hubs over RabbitMQ.
func runMaster(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data/master", "master.key, network.json, admin.token, chain/ and index.db")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "HTTP API address")
	amqpURL := fs.String("amqp-url", "", "RabbitMQ URL, amqp:// or amqps:// (required)")
	amqpPrefix := fs.String("amqp-prefix", "cissan", "prefix of every RabbitMQ exchange and queue of this network")
	interval := fs.Duration("block-interval", time.Second, "time between blocks")
	analyzersFile := fs.String("analyzers", "", "analyzer configuration JSON for a new chain's first block (default: the range rules of cissan up)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	minFree := addMinFreeDiskFlag(fs)
	amqpTLS := config.AddTLSFlags(fs, "amqp", "RabbitMQ")
	var hubs hubFlags
	fs.Var(&hubs, "hub", "a hub allowed to submit and validate, as id=PUBLIC_KEY_HEX (repeatable; fixed when network.json is created)")
	registryURL := fs.String("registry-url", "", "device registry's HTTP API; when set, auditors' read tokens work on this node's API and pages too")
	registryToken := fs.String("registry-token-file", "", "not taken: the master signs its requests to the registry with master.key")
	anchorOpts := addAnchorFlags(fs)
	tlsOpts := addServeTLSFlags(fs, false)
	registryCA := fs.String("registry-cacert", "", "PEM CA certificate(s) of an https:// --registry-url signed by a private CA")
	if err := parseRoleFlags(fs, env, args); err != nil {
		return err
	}
	tlsCfg, err := amqpTLS.Config()
	if err != nil {
		return usagef("master: %v", err)
	}
	ancCfg, err := anchorOpts.config(*dataDir)
	if err != nil {
		return err
	}
	if *amqpURL == "" {
		return usagef("master: --amqp-url is required")
	}
	if *registryToken != "" {
		return usagef("master: --registry-token-file is not taken: the master signs its requests to the registry with its own key (master.key); keep the registry's operator token with its operators")
	}
	if len(hubs) == 0 {
		return usagef("master: at least one --hub id=PUBLIC_KEY_HEX is required")
	}
	if *interval < 10*time.Millisecond {
		return usagef("master: --block-interval must be at least 10ms")
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
		return usagef("master: %v", err)
	}
	initial, err := initialAnalyzers(*analyzersFile, nil)
	if err != nil {
		return err
	}
	key, err := identity.LoadOrCreateKey(filepath.Join(*dataDir, "master.key"))
	if err != nil {
		return err
	}
	netw, err := identity.LoadOrCreateNetwork(filepath.Join(*dataDir, "network.json"), key.Public().(ed25519.PublicKey), hubs)
	if err != nil {
		return err
	}
	token, err := registry.LoadOrCreateOperatorToken(filepath.Join(*dataDir, "admin.token"))
	if err != nil {
		return err
	}
	led, err := ledger.Open(ctx, ledger.Config{Dir: *dataDir, Network: netw, Limits: event.DefaultLimits(), Log: log, IndexWhenFinal: master.IndexWhenFinal(*interval)})
	if err != nil {
		return err
	}
	defer led.Close()
	b, err := bus.DialAMQP(ctx, bus.AMQPConfig{URL: *amqpURL, TLS: tlsCfg, Prefix: *amqpPrefix, Node: bus.MasterNode, Log: log})
	if err != nil {
		return fmt.Errorf("--amqp-url: %w", err)
	}
	defer b.Close()
	mets := metrics.New()
	disk, err := watchDisk(*dataDir, minFree, log, mets, "master")
	if err != nil {
		return err
	}
	m, err := master.New(master.Config{Ledger: led, Key: key, Bus: b, BlockInterval: *interval, Log: log.With("node", "master"), Analyzers: &initial, Metrics: mets.Master(), Disk: disk})
	if err != nil {
		return err
	}
	b.HandleBatches(m.HandleBatch)
	b.ServeBlocks(m.FetchBlocks)

	var wg sync.WaitGroup
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	run(func() { _ = b.ConsumeValidations(ctx, bus.MasterNode, m.HandleValidation) })
	run(func() { disk.Run(ctx) })
	mux := http.NewServeMux()
	mets.GaugeFunc("cissan_chain_height", "Blocks in the node's chain.", map[string]string{"node": "master"}, func() float64 { return float64(led.Height()) })
	mets.GaugeFunc("cissan_indexed_height", "Blocks the node has indexed for search; the index trails the chain by the time it takes to index a block.", map[string]string{"node": "master"}, func() float64 { return float64(led.IndexedHeight()) })
	mets.GaugeFunc("cissan_final_height", "One more than the newest final block.", nil, func() float64 { return float64(led.FinalHeight()) })
	mets.GaugeFunc("cissan_pool_events", "Events waiting for a block.", map[string]string{"node": "master"}, func() float64 { return float64(m.PoolSize()) })
	mux.Handle("GET /metrics", mets.Handler())
	var anc *anchor.Service
	if ancCfg != nil {
		ancCfg.Dir, ancCfg.Chain, ancCfg.Log = *dataDir, anchor.LedgerChain(led), log.With("node", "anchor")
		if anc, err = anchor.New(*ancCfg); err != nil {
			return err
		}
		anc.RegisterMetrics(mets)
		run(func() { _ = anc.Run(ctx); _ = anc.Close() })
	}
	// The operator token reads everything; with a registry, read tokens
	// are checked there, its answers kept 30 s.
	resolve := registry.OperatorResolver(token)
	if *registryURL != "" {
		signer := &registry.NodeSigner{Network: netw.ID.String(), ID: bus.MasterNode, Key: key}
		resolve = registry.RemoteResolver(&registry.Client{BaseURL: *registryURL, Node: signer, HTTP: regHTTP}, token, 30*time.Second)
	}
	sessions := access.NewSessions(0, 0, nil) // explorer sign-ins, honoured by the API too
	resolve = sessions.Resolver(resolve)
	apiCfg := api.Config{
		Ledger: led, Pending: m.Pending, Authorize: registry.OperatorAuth(token), Operator: registry.OperatorAuth(token),
		Access: resolve, Master: m, Log: log,
		Status: func(context.Context) map[string]any {
			out := map[string]any{"nodes": []map[string]any{{"id": "master", "role": "master", "height": led.Height(), "pool": m.PoolSize(), "disk": disk.Status()}}}
			if anc != nil {
				out["anchor"] = anc.Status()
			}
			return out
		},
	}
	if anc != nil {
		apiCfg.Anchor, apiCfg.AnchorProof = anc.Block, anc.Proof
	}
	api.Handler(apiCfg, mux)
	stop, err := serveWithExplorer(ctx, *httpAddr, srvTLS, mux, run, explorer.Config{Ledger: led, Access: resolve, Sessions: sessions, Status: apiCfg.Status,
		Metrics: mets, Anchor: apiCfg.Anchor, Pending: m.Pending, Log: log})
	if err != nil {
		return err
	}
	defer stop()
	run(func() { _ = m.Run(ctx) })
	log.Info("master up", "network_id", netw.ID.String(), "api", *httpAddr, "hubs", len(hubs), "data_dir", *dataDir)
	fmt.Fprintf(env.Stdout, "cissan master is up: network %s, API %s://%s (network.json for hubs and verifiers: GET /v1/network), anchoring %s\n", netw.ID, httpScheme(srvTLS), *httpAddr, describeAnchor(anc))
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

// serveWithExplorer mounts the explorer's pages beside the API already on
// mux, and serves both on addr (the --http-addr flag).
func serveWithExplorer(ctx context.Context, addr string, srvTLS *tlsconf.Server, mux *http.ServeMux, run func(func()), c explorer.Config) (stop func(), err error) {
	c.Secure = srvTLS != nil
	ex, err := explorer.New(c)
	if err != nil {
		return nil, err
	}
	ex.Mount(mux)
	run(func() { ex.Run(ctx) })
	return serve(ctx, addr, "--http-addr", srvTLS, mux, run, c.Log)
}

// serve listens on addr (naming flag in the error when it cannot) and
// serves h until ctx ends, over HTTPS when srvTLS is set; stop shuts the
// server down.
func serve(ctx context.Context, addr, flag string, srvTLS *tlsconf.Server, h http.Handler, run func(func()), log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (change %s)", addr, err, flag)
	}
	if srvTLS != nil {
		ln = tls.NewListener(ln, srvTLS.HTTPS())
	}
	srv := httpserver.New(h, log)
	run(func() { _ = srv.Serve(ln) })
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// initialAnalyzers reads an analyzer configuration file, or builds one
// from range rules, or falls back to the default range rules.
func initialAnalyzers(file string, rules []analyze.RangeRule) (analyze.Config, error) {
	switch {
	case file != "" && len(rules) > 0:
		return analyze.Config{}, usagef("--analyzers and --range cannot be combined")
	case file != "":
		b, err := readFile(file)
		if err != nil {
			return analyze.Config{}, err
		}
		cfg, err := analyze.ParseConfig(b)
		if err != nil {
			return analyze.Config{}, fmt.Errorf("%s: %w", file, err)
		}
		return cfg, nil
	case len(rules) > 0:
		return analyze.Config{Range: rules}, nil
	}
	return analyze.Config{Range: analyze.DefaultRangeRules()}, nil
}
