package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cissan/internal/bus"
	"cissan/internal/config"
	"cissan/internal/httpserver"
	"cissan/internal/registry"
)

const registryUsage = `usage: cissan registry [flags]

Runs the device registry on its own: the operator's device API
(/v1/devices, as 'cissan device' drives it), behind the operator token in
DATA_DIR/admin.token, which the first start creates, and the hubs' login
check (/v1/auth), which each hub signs with its own key: --network names
the network.json that lists the keys ('cissan nodes' revokes a node). With --amqp-url, every change of a device
(deactivate, reactivate, revoke, rotate) is published on RabbitMQ, and
every hub drops the device's connections and cached login at once.

Every flag may also come from the environment, CISSAN_ and the flag name in
upper snake case (CISSAN_AMQP_URL), or from the JSON file named by --config
(or CISSAN_CONFIG), whose keys are flag names: {"amqp-url": "amqps://..."}.
The command line wins over the environment, which wins over the file.

flags:
`

// registry shutdown budgets: HTTP requests in flight, then device changes
// not yet published.
const (
	registryHTTPGrace  = 10 * time.Second
	registryDrainGrace = 5 * time.Second
)

func runRegistry(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data/registry", "directory of registry.db and admin.token")
	httpAddr := fs.String("http-addr", "127.0.0.1:8081", "address of the registry's HTTP API")
	amqpURL := fs.String("amqp-url", "", "RabbitMQ URL, amqp://user:pass@host:5672/vhost or amqps://...; when set, device changes are published to the hubs")
	amqpPrefix := fs.String("amqp-prefix", "cissan", "prefix of every RabbitMQ exchange and queue name (one per network sharing a broker)")
	amqpTLS := config.AddTLSFlags(fs, "amqp", "RabbitMQ")
	tlsOpts := addServeTLSFlags(fs, false)
	network := fs.String("network", "", "network.json (GET /v1/network on the master): the keys hubs and the master sign their requests with; read again when an unknown node signs, so copy the new file over it after enrolling a hub")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), registryUsage)
		fs.PrintDefaults()
	}
	if err := parseRoleFlags(fs, env, args); err != nil {
		return err
	}
	log, err := newLogger(env, *logLevel)
	if err != nil {
		return err
	}
	tlsCfg, err := amqpTLS.Config()
	if err != nil {
		return usagef("registry: %v", err)
	}
	srvTLS, err := tlsOpts.load(ctx, log)
	if err != nil {
		return err
	}

	// Listen first: a port in use leaves no data dir behind.
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("registry HTTP API: --http-addr %s: %w", *httpAddr, err)
	}
	defer ln.Close() // the server closes it too; this covers the early returns

	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	tokenFile := filepath.Join(*dataDir, "admin.token")
	token, err := registry.LoadOrCreateOperatorToken(tokenFile)
	if err != nil {
		return err
	}
	var keys *registry.NetworkFile
	if *network != "" {
		if keys, err = registry.LoadNetworkFile(*network); err != nil {
			return fmt.Errorf("--network: %w", err)
		}
	} else {
		log.Warn("no --network: no hub can log devices in (hubs sign their requests with keys network.json lists)")
	}
	reg, err := registry.Open(filepath.Join(*dataDir, "registry.db"))
	if err != nil {
		return err
	}
	defer reg.Close()

	var pub *changePublisher
	if *amqpURL != "" {
		b, err := bus.DialAMQP(ctx, bus.AMQPConfig{URL: *amqpURL, TLS: tlsCfg, Prefix: *amqpPrefix, Node: bus.RegistryNode, Log: log})
		if err != nil {
			return fmt.Errorf("--amqp-url: %w", err)
		}
		defer b.Close()
		pub = newChangePublisher(b, reg, log)
		// Subscribed before the API serves, so no change escapes.
		unsubscribe := reg.Subscribe(func(c registry.Change) { pub.add(c.UID) })
		defer unsubscribe()
		// The publisher outlives ctx a little, to drain at shutdown.
		pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
		pubDone := make(chan struct{})
		go func() {
			defer close(pubDone)
			pub.run(pubCtx)
		}()
		defer func() { stopPub(); <-pubDone }()
		if err := replayUndelivered(ctx, reg, pub); err != nil {
			return err
		}
	} else {
		log.Warn("no --amqp-url: hubs will not hear of device changes, and a revoked device stays connected until it logs in again")
	}

	// Devices, read tokens and nodes for the operator; device logins and
	// read token checks for the nodes too, each signing as itself.
	srv := httpserver.New(registry.NewServer(reg, token, keys), log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(httpsListener(ln, srvTLS)) }()
	abs, _ := filepath.Abs(tokenFile)
	fmt.Fprintf(env.Stdout, "cissan registry is up\n  API    %s://%s\n  token  %s\n", httpScheme(srvTLS), ln.Addr(), abs)
	log.Info("registry up", "http_addr", ln.Addr().String(), "amqp", *amqpURL != "")

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("registry HTTP API: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), registryHTTPGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("HTTP requests cut off at shutdown", "err", err)
	}
	if pub != nil {
		if n := pub.drain(registryDrainGrace); n > 0 {
			log.Warn("device changes not published before shutdown; their next start publishes them again",
				"changes", n)
		}
	}
	return nil
}

// changePublisher publishes the registry's device changes on the bus, in
// commit order, retrying each until RabbitMQ confirms it. Registry.Subscribe
// calls add synchronously inside the change, so add never blocks: the
// queue keeps each uid at most once (a later change of a device waiting to
// be announced is announced by the same message), so it is bounded by the
// number of devices.
type changePublisher struct {
	bus interface {
		PublishDeviceChange(ctx context.Context, uid string) error
	}
	outbox outbox
	log    *slog.Logger
	wake   chan struct{}

	mu       sync.Mutex
	pending  []string
	queued   map[string]bool
	inflight bool
}

// publishAttempt bounds one publish, so that a broker that neither confirms
// nor fails shows up in the log.
const publishAttempt = 10 * time.Second

// outbox is the registry's durable record of changes not yet delivered.
type outbox interface {
	Stamp(ctx context.Context, uid string) (int64, bool, error)
	Delivered(ctx context.Context, uid string, stamp int64) error
}

func newChangePublisher(b interface {
	PublishDeviceChange(ctx context.Context, uid string) error
}, ob outbox, log *slog.Logger) *changePublisher {
	return &changePublisher{bus: b, outbox: ob, log: log, wake: make(chan struct{}, 1), queued: map[string]bool{}}
}

func (p *changePublisher) add(uid string) {
	p.mu.Lock()
	if !p.queued[uid] {
		p.queued[uid] = true
		p.pending = append(p.pending, uid)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest change, marking it in flight.
func (p *changePublisher) next() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 {
		return "", false
	}
	uid := p.pending[0]
	p.pending = p.pending[1:]
	delete(p.queued, uid) // a change from now on needs a message of its own
	p.inflight = true
	return uid, true
}

func (p *changePublisher) finish(uid string, published bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight = false
	if !published && !p.queued[uid] {
		p.queued[uid] = true
		p.pending = append([]string{uid}, p.pending...)
	}
}

// run publishes until ctx ends.
func (p *changePublisher) run(ctx context.Context) {
	for {
		uid, ok := p.next()
		if !ok {
			select {
			case <-p.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		wait := 100 * time.Millisecond
		// The stamp read before publishing: a change made meanwhile keeps
		// its outbox row, and its own message follows.
		stamp, stamped, err := p.outbox.Stamp(ctx, uid)
		if err != nil {
			p.log.Error("read device change outbox", "device", uid, "err", err)
		}
		for {
			actx, cancel := context.WithTimeout(ctx, publishAttempt)
			err := p.bus.PublishDeviceChange(actx, uid)
			cancel()
			if err == nil {
				if stamped {
					if err := p.outbox.Delivered(context.WithoutCancel(ctx), uid, stamp); err != nil {
						p.log.Error("record device change delivered", "device", uid, "err", err)
					}
				}
				p.finish(uid, true)
				p.log.Debug("device change published", "device", uid)
				break
			}
			if ctx.Err() != nil {
				p.finish(uid, false)
				return
			}
			p.log.Warn("device change not published yet; retrying", "device", uid, "err", err, "retry_in", wait)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				p.finish(uid, false)
				return
			}
			wait = min(2*wait, 5*time.Second)
		}
	}
}

// drain waits until every change is published, at most for grace, and
// returns how many are not.
func (p *changePublisher) drain(grace time.Duration) int {
	deadline := time.Now().Add(grace)
	for {
		p.mu.Lock()
		n := len(p.pending)
		if p.inflight {
			n++
		}
		p.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replayUndelivered publishes the changes that were committed but not
// confirmed delivered before the registry last stopped: the outbox holds
// them, written in each change's own transaction.
func replayUndelivered(ctx context.Context, reg *registry.Registry, pub *changePublisher) error {
	uids, _, err := reg.Undelivered(ctx)
	if err != nil {
		return fmt.Errorf("replay undelivered device changes: %w", err)
	}
	for _, uid := range uids {
		pub.add(uid)
	}
	if len(uids) > 0 {
		pub.log.Info("publishing device changes not yet delivered", "changes", len(uids))
	}
	return nil
}
