// Package local runs the whole network in one process: the device
// registry, the master, N hubs each with its embedded MQTT broker, the
// in-process bus between them, and the HTTP API, with every store under one
// data directory. It is what `cissan up` runs and what end-to-end tests
// start.
//
// Data directory layout:
//
//	network.json       network id and public keys, for offline verifiers
//	admin.token        operator bearer token (0600)
//	registry.db        device registry (SQLite)
//	master/            master.key, chain/ (Pebble), index.db (SQLite)
//	hub-N/             hub.key, chain/, index.db
package local

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"cissan/internal/access"
	"cissan/internal/analyze"
	"cissan/internal/anchor"
	"cissan/internal/api"
	"cissan/internal/bus"
	"cissan/internal/chain"
	"cissan/internal/diskspace"
	"cissan/internal/event"
	"cissan/internal/explorer"
	"cissan/internal/httpserver"
	"cissan/internal/hub"
	"cissan/internal/identity"
	"cissan/internal/ledger"
	"cissan/internal/master"
	"cissan/internal/metrics"
	"cissan/internal/registry"
	"cissan/internal/tlsconf"
)

// Config configures a one-process network.
type Config struct {
	DataDir  string
	HTTPAddr string // API; "127.0.0.1:0" picks a free port
	MQTTAddr string // first hub; further hubs take the next ports (all pick free ports if the port is 0); "" for none
	// MQTTSAddr is the first hub's MQTT over TLS address, numbered like
	// MQTTAddr; used only with TLS.
	MQTTSAddr string
	// TLS, when set, serves MQTT over TLS on MQTTSAddr and the API over
	// HTTPS; SIGHUP reloads its files (see internal/tlsconf).
	TLS           *tlsconf.Server
	Hubs          int
	BlockInterval time.Duration
	ResubmitAfter time.Duration
	Guards        hub.Guards // what one client may cost a hub
	Limits        event.Limits
	Analyzers     analyze.Config // the first block's analyzer configuration, on a new chain
	// Anchor, when set, timestamps the master's chain on Bitcoin; its Dir
	// and Chain are filled in here (the master's).
	Anchor *anchor.Config
	Log    *slog.Logger
	Disk   DiskConfig // free-space threshold of every node; see disk.go
}

// Network is a running one-process network.
type Network struct {
	Net      *chain.Network
	Registry *registry.Registry
	Master   *master.Master
	Hubs     []*hub.Hub
	Token    string // operator token
	APIURL   string
	Metrics  *metrics.Metrics // served at GET /metrics
	Anchor   *anchor.Service  // nil when anchoring is off
	disks    map[string]*diskspace.Watcher

	cfg      Config
	ledgers  []*ledger.Ledger
	http     *http.Server
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// HubID names hub i (0-based).
func HubID(i int) string { return "hub-" + strconv.Itoa(i+1) }

// Start starts the network; it runs until ctx ends or Close is called.
func Start(ctx context.Context, cfg Config) (n *Network, err error) {
	if cfg.Hubs < 1 {
		return nil, errors.New("--hubs must be at least 1")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	n = &Network{cfg: cfg, cancel: cancel, Metrics: metrics.New()}
	started := n // every `return nil, err` below sets n to nil before this runs
	defer func() {
		if err != nil {
			started.Close()
		}
	}()

	masterKey, err := identity.LoadOrCreateKey(filepath.Join(cfg.DataDir, "master", "master.key"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, cfg.Hubs)
	keys := make([]ed25519.PrivateKey, cfg.Hubs)
	for i := range ids {
		ids[i] = HubID(i)
		if keys[i], err = identity.LoadOrCreateKey(filepath.Join(cfg.DataDir, ids[i], "hub.key")); err != nil {
			return nil, err
		}
	}
	hubs := make([]chain.HubInfo, len(ids))
	for i, id := range ids {
		hubs[i] = chain.HubInfo{ID: id, PublicKey: keys[i].Public().(ed25519.PublicKey)}
	}
	if n.Net, err = identity.LoadOrCreateNetwork(filepath.Join(cfg.DataDir, "network.json"), masterKey.Public().(ed25519.PublicKey), hubs); err != nil {
		return nil, err
	}
	if n.Token, err = registry.LoadOrCreateOperatorToken(filepath.Join(cfg.DataDir, "admin.token")); err != nil {
		return nil, err
	}
	if n.Registry, err = registry.Open(filepath.Join(cfg.DataDir, "registry.db")); err != nil {
		return nil, err
	}

	b := bus.NewInProc()
	openLedger := func(dir string, indexWhenFinal time.Duration) (*ledger.Ledger, error) {
		l, err := ledger.Open(ctx, ledger.Config{Dir: dir, Network: n.Net, Limits: cfg.Limits, Log: cfg.Log, IndexWhenFinal: indexWhenFinal})
		if err == nil {
			n.ledgers = append(n.ledgers, l)
		}
		return l, err
	}

	ml, err := openLedger(filepath.Join(cfg.DataDir, "master"), master.IndexWhenFinal(cfg.BlockInterval))
	if err != nil {
		return nil, err
	}
	mdisk, err := n.watchDisk(ctx, "master", filepath.Join(cfg.DataDir, "master"))
	if err != nil {
		return nil, err
	}
	if n.Master, err = master.New(master.Config{
		Ledger: ml, Key: masterKey, Bus: b, BlockInterval: cfg.BlockInterval, Log: cfg.Log.With("node", "master"),
		Analyzers: &cfg.Analyzers, Metrics: n.Metrics.Master(), Disk: mdisk,
	}); err != nil {
		return nil, err
	}
	b.HandleBatches(n.Master.HandleBatch)
	b.ServeBlocks(n.Master.FetchBlocks)
	m := n.Master // not n.Master in the goroutine: a failed Start sets n to nil
	n.goRun(func() { _ = b.ConsumeValidations(ctx, "master", m.HandleValidation) })

	for i, id := range ids {
		hl, err := openLedger(filepath.Join(cfg.DataDir, id), 0)
		if err != nil {
			return nil, err
		}
		hdisk, err := n.watchDisk(ctx, id, filepath.Join(cfg.DataDir, id))
		if err != nil {
			return nil, err
		}
		h, err := hub.New(hub.Config{
			ID: id, Key: keys[i], Ledger: hl, Registry: n.Registry, Bus: b,
			MQTTAddr: hubAddr(cfg.MQTTAddr, i), MQTTSAddr: hubAddr(cfg.MQTTSAddr, i), TLS: cfg.mqttTLS(), ResubmitAfter: cfg.ResubmitAfter, Guards: cfg.Guards, Log: cfg.Log,
			Metrics: n.Metrics.Hub(id), Disk: hdisk,
		})
		if err != nil {
			return nil, err
		}
		if err := h.Start(ctx); err != nil {
			return nil, err
		}
		n.Hubs = append(n.Hubs, h)
		cancelSub := n.Registry.Subscribe(func(c registry.Change) { h.DeviceChanged(c.UID) })
		n.goRun(func() { <-ctx.Done(); cancelSub() })
		n.goRun(func() { _ = b.ConsumeBlocks(ctx, id, h.HandleBlock) })
		n.goRun(func() { _ = b.ConsumeValidations(ctx, id, h.HandleValidation) })
	}

	if cfg.Anchor != nil {
		ac := *cfg.Anchor
		ac.Dir, ac.Chain, ac.Log = filepath.Join(cfg.DataDir, "master"), anchor.LedgerChain(ml), cfg.Log.With("node", "anchor")
		if n.Anchor, err = anchor.New(ac); err != nil {
			return nil, err
		}
		n.Anchor.RegisterMetrics(n.Metrics)
		n.goRun(func() { _ = n.Anchor.Run(ctx) })
	}
	n.observe(ml)
	if err := n.serveHTTP(ctx, ml); err != nil {
		return nil, err
	}
	n.goRun(func() { _ = n.Master.Run(ctx) })
	cfg.Log.Info("network up", "network_id", n.Net.ID.String(), "api", n.APIURL, "hubs", len(n.Hubs), "data_dir", cfg.DataDir)
	return n, nil
}

func (n *Network) goRun(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// hubAddr gives hub i the port after hub i-1's; port 0 stays 0.
func hubAddr(first string, i int) string {
	host, port, err := net.SplitHostPort(first)
	if err != nil {
		return first // the listener reports the bad address
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 {
		return first
	}
	return net.JoinHostPort(host, strconv.Itoa(p+i))
}

func (n *Network) serveHTTP(ctx context.Context, ml *ledger.Ledger) error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP API on %s: %w (change --http-addr)", n.cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	devices := registry.NewHandler(n.Registry, registry.OperatorAuth(n.Token))
	mux.Handle("/v1/devices", devices)
	mux.Handle("/v1/devices/", devices)
	mux.Handle("/v1/limits", devices)
	// Metrics carry counts, heights and durations, never event contents,
	// device ids or namespaces: public, like block headers.
	mux.Handle("GET /metrics", n.Metrics.Handler())
	ac := api.Config{
		Ledger:    ml,
		Pending:   n.pending,
		Status:    n.status,
		Authorize: registry.OperatorAuth(n.Token),
		Operator:  registry.OperatorAuth(n.Token),
		Master:    n.Master,
		Log:       n.cfg.Log,
	}
	if n.Anchor != nil {
		ac.Anchor, ac.AnchorProof = n.Anchor.Block, n.Anchor.Proof
	}
	// Read tokens (auditors) see their namespaces' events, in the API and
	// the explorer alike; only the operator token manages them.
	sessions := access.NewSessions(0, 0, nil) // explorer sign-ins, honoured by the API too
	ac.Access = sessions.Resolver(n.Registry.Resolver(n.Token))
	api.Handler(ac, mux)
	tokens := registry.NewReadTokenHandler(n.Registry, registry.OperatorAuth(n.Token))
	mux.Handle("/v1/tokens", tokens)
	mux.Handle("/v1/tokens/", tokens)
	ex, err := explorer.New(explorer.Config{
		Ledger: ml, Access: ac.Access, Status: n.status, Metrics: n.Metrics, Anchor: ac.Anchor,
		Registry: n.Registry, Pending: n.pending, Sessions: sessions, Log: n.cfg.Log, Secure: n.cfg.TLS != nil,
	})
	if err != nil {
		ln.Close()
		return err
	}
	ex.Mount(mux)
	n.goRun(func() { ex.Run(ctx) })
	n.http = httpserver.New(mux, n.cfg.Log)
	n.APIURL = "http://" + ln.Addr().String()
	if n.cfg.TLS != nil {
		ln = tls.NewListener(ln, n.cfg.TLS.HTTPS())
		n.APIURL = "https://" + ln.Addr().String()
	}
	n.goRun(func() { _ = n.http.Serve(ln) })
	return nil
}

// observe registers the metrics that mirror the nodes' state; they are
// read at every scrape, so they cost nothing between scrapes.
func (n *Network) observe(ml *ledger.Ledger) {
	const (
		heightHelp  = "Blocks stored by the node."
		indexedHelp = "Blocks the node has indexed for search; the index trails the chain by the time it takes to index a block."
		poolHelp    = "Events waiting for a block in the node's pool."
	)
	m := n.Metrics
	node := func(id string) map[string]string { return map[string]string{"node": id} }
	m.GaugeFunc("cissan_chain_height", heightHelp, node("master"), func() float64 { return float64(ml.Height()) })
	m.GaugeFunc("cissan_indexed_height", indexedHelp, node("master"), func() float64 { return float64(ml.IndexedHeight()) })
	m.GaugeFunc("cissan_pool_events", poolHelp, node("master"), func() float64 { return float64(n.Master.PoolSize()) })
	m.GaugeFunc("cissan_final_height", "Blocks up to the newest one the quorum of hubs accepted, as the master records validations.",
		nil, func() float64 { return float64(ml.FinalHeight()) })
	m.CounterFunc("cissan_tagged_events_total", "Events in the chain that carry at least one analyzer tag.",
		nil, func() float64 { return float64(ml.Tagged()) })
	for _, h := range n.Hubs {
		l, s, hl := node(h.ID()), h.Stats(), h.Ledger()
		m.GaugeFunc("cissan_chain_height", heightHelp, l, func() float64 { return float64(hl.Height()) })
		m.GaugeFunc("cissan_indexed_height", indexedHelp, l, func() float64 { return float64(hl.IndexedHeight()) })
		m.GaugeFunc("cissan_pool_events", poolHelp, l, func() float64 { return float64(h.PoolSize()) })
		m.GaugeFunc("cissan_block_validation_lag_blocks", "Blocks the master has stored that the hub has not yet validated and stored.",
			l, func() float64 {
				mh := ml.Height()
				return float64(mh - min(mh, hl.Height()))
			})
		m.CounterFunc("cissan_events_retransmits_total", "Repeated events a hub acknowledged without logging them again.",
			l, func() float64 { return float64(s.Retransmits.Load()) })
		m.CounterFunc("cissan_events_resubmitted_total", "Submissions a hub sent the master again after they waited too long for a block.",
			l, func() float64 { return float64(s.Resubmitted.Load()) })
		m.CounterFunc("cissan_events_refused_by_master_total", "Submissions of a hub that the master refused for good (a bus reply the master can send; it refuses no event for its uid, since two contents under one device uid are both logged).",
			l, func() float64 { return float64(s.Refused.Load()) })
	}
	m.GaugeMap("cissan_devices", "Devices in the registry, by status.", "status", func() (map[string]float64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := n.Registry.Counts(ctx)
		out := make(map[string]float64, len(c))
		for st, k := range c {
			out[string(st)] = float64(k)
		}
		return out, err
	})
}

func (n *Network) pending(uid, deviceUID string) bool {
	if n.Master.Pending(uid, deviceUID) {
		return true
	}
	for _, h := range n.Hubs {
		if h.Pending(uid, deviceUID) {
			return true
		}
	}
	return false
}

func (n *Network) status(ctx context.Context) map[string]any {
	nodes := []map[string]any{{"id": "master", "role": "master", "height": n.Master.Ledger().Height(), "pool": n.Master.PoolSize()}}
	for _, h := range n.Hubs {
		s := h.Stats()
		nodes = append(nodes, map[string]any{
			"id": h.ID(), "role": "hub", "height": h.Ledger().Height(), "pool": h.PoolSize(), "mqtt": h.MQTTAddr(), "mqtts": h.MQTTSAddr(),
			"accepted": s.Accepted.Load(), "retransmits": s.Retransmits.Load(), "rejected": s.Rejected.Load(),
			"resubmitted": s.Resubmitted.Load(), "refused_by_master": s.Refused.Load(),
			"blocks_validated": s.Validated.Load(), "blocks_rejected": s.BadBlocks.Load(),
		})
	}
	n.addDiskStatus(nodes)
	out := map[string]any{"nodes": nodes}
	if c, err := n.Registry.Counts(ctx); err == nil {
		out["devices"] = c
	}
	if n.Anchor != nil {
		out["anchor"] = n.Anchor.Status()
	}
	return out
}

// MQTTAddrs returns each hub's MQTT address.
func (n *Network) MQTTAddrs() []string {
	out := make([]string, len(n.Hubs))
	for i, h := range n.Hubs {
		out[i] = h.MQTTAddr()
	}
	return out
}

// MQTTSAddrs returns each hub's MQTT over TLS address ("" without TLS).
func (n *Network) MQTTSAddrs() []string {
	out := make([]string, len(n.Hubs))
	for i, h := range n.Hubs {
		out[i] = h.MQTTSAddr()
	}
	return out
}

func (c Config) mqttTLS() *tls.Config {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.Config()
}

// Close stops everything and closes every store.
func (n *Network) Close() error {
	n.once.Do(func() {
		n.cancel()
		if n.http != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = n.http.Shutdown(sctx)
			cancel()
		}
		for _, h := range n.Hubs {
			_ = h.Close()
		}
		n.wg.Wait()
		if n.Anchor != nil {
			_ = n.Anchor.Close()
		}
		for _, l := range n.ledgers {
			if err := l.Close(); err != nil && n.closeErr == nil {
				n.closeErr = err
			}
		}
		if n.Registry != nil {
			_ = n.Registry.Close()
		}
	})
	return n.closeErr
}
