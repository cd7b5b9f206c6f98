package bus

// The RabbitMQ transport. Topology, for prefix P (default "cissan"); the
// same in docs/rabbitmq.md:
//
//	exchange         type    routing key  queue                 queue type       consumer
//	P.master         direct  batch        P.master.batches      quorum           master: HandleBatches
//	P.master         direct  fetch        P.master.fetch        quorum           master: ServeBlocks
//	P.blocks         fanout  -            P.blocks.<hub>        quorum, per hub  hub: ConsumeBlocks
//	P.validations    fanout  -            P.validations.<node>  quorum, per node master and hubs: ConsumeValidations
//	P.registry       fanout  -            P.registry.<hub>      quorum, per hub  hub: ConsumeDeviceChanges (message TTL 24h)
//	"" (default)     direct  reply-to     P.reply.<node>        classic durable  this node's RPC replies
//
// Every node declares the exchanges, the master's two queues and its own
// queues whenever it connects, so no message is published before the queue
// that must hold it exists, whichever process starts first. A hub's block
// queue therefore exists from the hub's first connection on, and collects
// blocks while the hub is down; so does its registry queue, for device
// changes. The registry (node RegistryNode) only publishes device changes:
// it declares the exchanges and no queue.
//
// Messages: content type application/x-cissan-bus, the AMQP "type"
// property names the kind (batch, refusals, block, validation, fetch,
// blocks, error; see wire.go), header cissan-node names the sender.
// Batches, blocks and validations are persistent and published with
// publisher confirms: a publish returns nil only once RabbitMQ has the
// message in every queue it routes to. RPC requests carry a correlation
// id, reply-to (the caller's reply queue) and an expiration equal to the
// time the caller will wait, so requests nobody waits for any more do not
// pile up while the master is away; replies carry the same expiration.
//
// Consumers acknowledge manually, after the handler returns, with a
// bounded prefetch; each queue has one exclusive consumer. The master
// replies to a batch only after its handler made it durable, and acks the
// request after the reply is published on the same channel, so a crash
// between the two makes RabbitMQ deliver the request again (the master
// dedupes it). Nothing rests on the bus alone: a hub keeps a batch until a
// block covers it and resubmits it, and fetches any block it missed, so a
// message the bus drops or expires costs a retry, never an event.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cissan/internal/chain"
)

// AMQPConfig configures a node's connection to RabbitMQ.
type AMQPConfig struct {
	// URL is amqp://user:pass@host:5672/vhost or amqps://... With amqps,
	// TLS (if set) configures the client: its certificates are sent, and
	// when the URL has no user name the bus authenticates with SASL
	// EXTERNAL (RabbitMQ's rabbitmq_auth_mechanism_ssl plugin).
	URL string
	TLS *tls.Config
	// Prefix starts every exchange and queue name; default "cissan". Two
	// networks can share a broker (or a vhost) under different prefixes.
	Prefix string
	// Node is this process's node id: MasterNode or a hub id. It names
	// the node's own queues.
	Node string
	// Prefetch bounds the unacknowledged messages per consumer; default 64.
	Prefetch int
	// RPCTimeout bounds how long SubmitBatch and FetchBlocks wait for the
	// master's reply when their context has no earlier deadline; default 30s.
	RPCTimeout time.Duration
	// MaxMessageBytes bounds a message; default 128 MiB, RabbitMQ 3.x's
	// max_message_size. RabbitMQ 4 defaults to 16 MiB: raise the broker's
	// setting above the largest block, or lower this to match.
	MaxMessageBytes int
	Log             *slog.Logger
}

// MasterNode is the master's node id on the bus. The master has no block
// queue: it mints blocks, it does not receive them.
const MasterNode = "master"

// RegistryNode is the device registry's node id on the bus. It only
// publishes device changes, so it declares no queue and makes no calls.
const RegistryNode = "registry"

// DeviceChangeTTL is how long a device change waits in a hub's registry
// queue. A change matters to a hub for as long as it could hold a live
// connection or a cached credential from before the change; a hub that
// restarts has neither. The TTL covers a running hub cut off from RabbitMQ
// for up to a day, and bounds what piles up in the queue of a hub that is
// gone for good. It is a queue argument: changing it means deleting the
// queues (RabbitMQ refuses to redeclare a queue with other arguments).
const DeviceChangeTTL = 24 * time.Hour

const (
	contentType   = "application/x-cissan-bus"
	headerNode    = "cissan-node"
	keyBatch      = "batch"
	keyFetch      = "fetch"
	dialTimeout   = 15 * time.Second
	fetchBudget   = 8 << 20 // a fetch reply stops adding blocks past this size
	maxBackoff    = 5 * time.Second
	firstBackoff  = 100 * time.Millisecond
	maxNodeLength = 200 // queue names are at most 255 bytes
)

// ErrClosed is returned by an AMQP bus after Close.
var ErrClosed = errors.New("bus: closed")

// ErrUnavailable is returned when RabbitMQ or the master did not take a
// message: the connection dropped before the publish was confirmed, the
// broker refused it, or no reply came in time. The message may or may not
// have arrived; sending it again is always safe.
var ErrUnavailable = errors.New("bus: unavailable")

// ErrTooLarge is returned for a message over AMQPConfig.MaxMessageBytes.
var ErrTooLarge = errors.New("bus: message too large")

// AMQP is the bus over RabbitMQ, for nodes in separate processes. It has
// InProc's methods with the same meaning; master, hubs and tests use either.
// It reconnects on its own, with backoff, when the connection drops.
type AMQP struct {
	cfg  AMQPConfig
	log  *slog.Logger
	topo topology

	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu      sync.Mutex
	sess    *session      // nil while disconnected
	changed chan struct{} // closed when sess changes
	calls   map[string]chan []byte
	claimed map[string]bool // queues consumed by this process
	closed  bool

	batchHandler atomic.Pointer[BatchHandler]
	blockFetcher atomic.Pointer[BlockFetcher]

	consumers  sync.WaitGroup
	supervisor sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
	reconnects atomic.Int64 // for logs and tests
}

// session is one connection and its publishing channel.
type session struct {
	conn *amqp.Connection
	raw  net.Conn      // the TCP connection under it (tests cut it)
	pub  *amqp.Channel // in confirm mode
	done chan struct{} // closed once the connection is gone
}

// DialAMQP connects to RabbitMQ and declares the topology. It fails if the
// first connection fails, so a wrong URL or credentials show at start;
// after that it reconnects on its own until Close.
func DialAMQP(ctx context.Context, cfg AMQPConfig) (*AMQP, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	a := &AMQP{
		cfg:     cfg,
		log:     cfg.Log.With("bus", "amqp", "node", cfg.Node),
		topo:    newTopology(cfg.Prefix, cfg.Node),
		changed: make(chan struct{}),
		calls:   map[string]chan []byte{},
		claimed: map[string]bool{},
	}
	s, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.setSession(s)
	a.supervisor.Add(1)
	go a.supervise(s)
	if cfg.Node == RegistryNode {
		return a, nil // it makes no calls: no replies to consume
	}
	if err := a.goConsume(consumer{queue: a.topo.replyQueue(), workers: 1, handle: a.dispatchReply}); err != nil {
		_ = a.Close()
		return nil, err
	}
	return a, nil
}

func (c *AMQPConfig) setDefaults() error {
	if c.URL == "" {
		return errors.New("amqp config: url is empty")
	}
	if c.Node == "" || len(c.Node) > maxNodeLength {
		return fmt.Errorf("amqp config: node %q: want 1 to %d bytes", c.Node, maxNodeLength)
	}
	if c.Prefix == "" {
		c.Prefix = "cissan"
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 64
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 30 * time.Second
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 128 << 20
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// Close stops the consumers (each finishes and acknowledges the message in
// hand), fails calls in flight with ErrClosed and closes the connection.
// Handlers must return when their context ends, or Close waits for them.
func (a *AMQP) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.cancel()
		a.consumers.Wait()
		a.supervisor.Wait()
		a.mu.Lock()
		s := a.sess
		a.sess = nil
		a.mu.Unlock()
		if s != nil {
			if err := s.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
				a.closeErr = fmt.Errorf("close amqp connection: %w", err)
			}
		}
	})
	return a.closeErr
}

// ---- topology ----

// topology names the exchanges and queues of one network (prefix) as one
// node sees them.
type topology struct {
	prefix, node                    string
	master, blocks, valid, registry string // exchanges
}

func newTopology(prefix, node string) topology {
	return topology{
		prefix: prefix, node: node,
		master: prefix + ".master", blocks: prefix + ".blocks", valid: prefix + ".validations",
		registry: prefix + ".registry",
	}
}

// queue describes a queue and its binding, declared idempotently.
type queue struct {
	name     string
	exchange string // "" for the default exchange: no binding
	key      string
	quorum   bool
	ttl      time.Duration // message TTL; 0 for none
}

func (t topology) batchQueue() queue {
	return queue{name: t.prefix + ".master.batches", exchange: t.master, key: keyBatch, quorum: true}
}

func (t topology) fetchQueue() queue {
	return queue{name: t.prefix + ".master.fetch", exchange: t.master, key: keyFetch, quorum: true}
}

func (t topology) replyQueue() queue { return queue{name: t.prefix + ".reply." + t.node} }

func (t topology) blockQueue(node string) queue {
	return queue{name: t.prefix + ".blocks." + node, exchange: t.blocks, quorum: true}
}

func (t topology) validationQueue(node string) queue {
	return queue{name: t.prefix + ".validations." + node, exchange: t.valid, quorum: true}
}

func (t topology) registryQueue(node string) queue {
	return queue{name: t.prefix + ".registry." + node, exchange: t.registry, quorum: true, ttl: DeviceChangeTTL}
}

// queues lists what this node declares on every connect: the master's
// queues, so requests always have a queue to land in, and its own. The
// registry only publishes to fan-out exchanges: it needs none.
func (t topology) queues() []queue {
	switch t.node {
	case RegistryNode:
		return nil
	case MasterNode:
		return []queue{t.batchQueue(), t.fetchQueue(), t.replyQueue(), t.validationQueue(t.node)}
	default:
		return []queue{t.batchQueue(), t.fetchQueue(), t.replyQueue(), t.validationQueue(t.node),
			t.blockQueue(t.node), t.registryQueue(t.node)}
	}
}

func (t topology) declareExchanges(ch *amqp.Channel) error {
	for _, ex := range []struct{ name, kind string }{
		{t.master, amqp.ExchangeDirect}, {t.blocks, amqp.ExchangeFanout}, {t.valid, amqp.ExchangeFanout},
		{t.registry, amqp.ExchangeFanout},
	} {
		if err := ch.ExchangeDeclare(ex.name, ex.kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", ex.name, err)
		}
	}
	return nil
}

// declare declares q durable and binds it. Quorum queues keep their
// messages through the loss of a minority of broker nodes and confirm a
// publish only once a majority has it on disk; the reply queue holds only
// answers a caller can ask for again, so a classic queue does.
func (q queue) declare(ch *amqp.Channel) error {
	args := amqp.Table{}
	if q.quorum {
		args[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
	}
	if q.ttl > 0 {
		args[amqp.QueueMessageTTLArg] = q.ttl.Milliseconds()
	}
	if _, err := ch.QueueDeclare(q.name, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", q.name, err)
	}
	if q.exchange == "" {
		return nil
	}
	if err := ch.QueueBind(q.name, q.key, q.exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s to %s: %w", q.name, q.exchange, err)
	}
	return nil
}

// ---- connection and reconnection ----

// connect dials, declares the whole topology and opens the confirm-mode
// publishing channel.
func (a *AMQP) connect(ctx context.Context) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &session{done: make(chan struct{})}
	cfg := amqp.Config{
		Properties:      amqp.NewConnectionProperties(),
		TLSClientConfig: a.cfg.TLS.Clone(), // DialConfig sets ServerName on it
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := amqp.DefaultDial(dialTimeout)(network, addr)
			s.raw = c
			return c, err
		},
	}
	cfg.Properties.SetClientConnectionName(a.topo.prefix + " " + a.cfg.Node)
	if a.externalAuth() {
		cfg.SASL = []amqp.Authentication{&amqp.ExternalAuth{}}
	}
	conn, err := amqp.DialConfig(a.cfg.URL, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(a.cfg.URL), err)
	}
	s.conn = conn
	if err := a.declareTopology(conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if s.pub, err = conn.Channel(); err == nil {
		err = s.pub.Confirm(false)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("open publishing channel: %w", err)
	}
	return s, nil
}

func (a *AMQP) declareTopology(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := a.topo.declareExchanges(ch); err != nil {
		return err
	}
	for _, q := range a.topo.queues() {
		if err := q.declare(ch); err != nil {
			return err
		}
	}
	return nil
}

func (a *AMQP) externalAuth() bool {
	u, err := url.Parse(a.cfg.URL)
	return err == nil && u.Scheme == "amqps" && u.User == nil && a.cfg.TLS != nil && len(a.cfg.TLS.Certificates) > 0
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// supervise watches the session and replaces it when it dies, until Close.
func (a *AMQP) supervise(s *session) {
	defer a.supervisor.Done()
	for {
		err := a.watch(s)
		if a.ctx.Err() != nil {
			return
		}
		a.setSession(nil)
		close(s.done) // fails the calls waiting on this connection
		_ = s.conn.Close()
		a.log.Warn("connection to RabbitMQ lost; reconnecting", "err", err)
		if s = a.reconnect(); s == nil {
			return
		}
		a.setSession(s)
		a.log.Info("reconnected to RabbitMQ", "reconnects", a.reconnects.Add(1))
	}
}

// watch returns when the connection or its publishing channel closes, or
// at Close. A publishing channel the broker closed (a refused message)
// takes the connection with it: rebuilding everything is the one recovery
// path, and it is rare.
func (a *AMQP) watch(s *session) error {
	connClosed := s.conn.NotifyClose(make(chan *amqp.Error, 1))
	pubClosed := s.pub.NotifyClose(make(chan *amqp.Error, 1))
	var e *amqp.Error
	select {
	case <-a.ctx.Done():
		return nil
	case e = <-connClosed:
	case e = <-pubClosed:
	}
	if e == nil {
		return errors.New("closed")
	}
	return e
}

func (a *AMQP) reconnect() *session {
	b := backoff{}
	for {
		if !sleep(a.ctx, b.next()) {
			return nil
		}
		s, err := a.connect(a.ctx)
		if err == nil {
			return s
		}
		if a.ctx.Err() != nil {
			return nil
		}
		a.log.Warn("reconnect to RabbitMQ failed", "err", err, "retry_in", b.peek())
	}
}

func (a *AMQP) setSession(s *session) {
	a.mu.Lock()
	a.sess = s
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
}

// session returns the live session, waiting while there is none.
func (a *AMQP) session(ctx context.Context) (*session, error) {
	for {
		a.mu.Lock()
		s, changed := a.sess, a.changed
		a.mu.Unlock()
		if s != nil && !isClosed(s.done) {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-a.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// join returns a context that also ends at Close, with ErrClosed as its
// cause. Where a context ends, the bus returns context.Cause: the caller's
// own error, ErrClosed, or the RPC timeout's ErrUnavailable (see call).
func (a *AMQP) join(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(a.ctx, func() { cancel(ErrClosed) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// ---- publishing ----

// publish sends one message and waits for RabbitMQ's confirm. It returns
// the session used, whose done channel tells RPC callers the connection
// their reply would come on is gone.
func (a *AMQP) publish(ctx context.Context, exchange, key string, kind byte, body []byte, p amqp.Publishing) (*session, error) {
	if len(body) > a.cfg.MaxMessageBytes {
		return nil, fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, KindName(kind), len(body), a.cfg.MaxMessageBytes)
	}
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	p.Body, p.ContentType, p.Type, p.Timestamp = body, contentType, KindName(kind), time.Now()
	p.Headers = amqp.Table{headerNode: a.cfg.Node}
	dc, err := s.pub.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, p)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("%w: publish %s: %w", ErrUnavailable, KindName(kind), err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return nil, context.Cause(ctx)
	}
	if !ok {
		return nil, fmt.Errorf("%w: RabbitMQ did not confirm the %s (connection lost or message refused)", ErrUnavailable, KindName(kind))
	}
	return s, nil
}

// PublishBlock sends a block to every hub's queue, persistent, and returns
// once RabbitMQ has confirmed it.
func (a *AMQP) PublishBlock(ctx context.Context, blk *chain.Block) error {
	ctx, cancel := a.join(ctx)
	defer cancel()
	_, err := a.publish(ctx, a.topo.blocks, "", KindBlock, EncodeBlock(blk), amqp.Publishing{DeliveryMode: amqp.Persistent})
	if err != nil {
		return fmt.Errorf("publish block %d: %w", blk.Header.Height, err)
	}
	return nil
}

// PublishValidation sends a validation to every node's queue (the master's
// and every hub's), persistent, and returns once RabbitMQ has confirmed it.
func (a *AMQP) PublishValidation(ctx context.Context, v *chain.Validation) error {
	ctx, cancel := a.join(ctx)
	defer cancel()
	_, err := a.publish(ctx, a.topo.valid, "", KindValidation, EncodeValidation(v), amqp.Publishing{DeliveryMode: amqp.Persistent})
	if err != nil {
		return fmt.Errorf("publish validation of block %d: %w", v.Height, err)
	}
	return nil
}

// PublishDeviceChange tells every hub that the registry changed a device's
// status or token, persistent, and returns once RabbitMQ has confirmed it.
// Hubs that have never connected have no queue yet and do not get it: they
// have no connection or cached credential to drop.
func (a *AMQP) PublishDeviceChange(ctx context.Context, uid string) error {
	ctx, cancel := a.join(ctx)
	defer cancel()
	_, err := a.publish(ctx, a.topo.registry, "", KindDevice, EncodeDeviceChange(uid), amqp.Publishing{DeliveryMode: amqp.Persistent})
	if err != nil {
		return fmt.Errorf("publish change of device %q: %w", uid, err)
	}
	return nil
}

// ---- RPC, caller side ----

// SubmitBatch sends a batch to the master and returns once the master has
// made it durable and answered with its refusals. On ErrUnavailable the
// batch may or may not have reached the master; send it again (the master
// dedupes resubmissions).
func (a *AMQP) SubmitBatch(ctx context.Context, b *Batch) ([]Refusal, error) {
	reply, err := a.call(ctx, keyBatch, KindBatch, EncodeBatch(b), amqp.Persistent)
	if err != nil {
		return nil, fmt.Errorf("submit batch %d: %w", b.Seq, err)
	}
	refused, err := decodeReply(reply, DecodeRefusals)
	if err != nil {
		return nil, fmt.Errorf("submit batch %d: %w", b.Seq, err)
	}
	return refused, nil
}

// FetchBlocks asks the master for up to max blocks from height from on. The
// master may send fewer, to keep the reply small; ask again from the next
// height.
func (a *AMQP) FetchBlocks(ctx context.Context, from uint64, max int) ([]*chain.Block, error) {
	reply, err := a.call(ctx, keyFetch, KindFetch, EncodeFetch(from, max), amqp.Transient)
	if err != nil {
		return nil, fmt.Errorf("fetch blocks from %d: %w", from, err)
	}
	blocks, err := decodeReply(reply, DecodeBlocks)
	if err != nil {
		return nil, fmt.Errorf("fetch blocks from %d: %w", from, err)
	}
	return blocks, nil
}

// call publishes a request to the master and waits for the reply with its
// correlation id. If the connection drops after the publish, the call
// fails at once rather than waiting out the timeout: the caller retries.
func (a *AMQP) call(ctx context.Context, key string, kind byte, body []byte, mode uint8) ([]byte, error) {
	ctx, cancel := a.join(ctx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, a.cfg.RPCTimeout,
		fmt.Errorf("%w: no reply from the master within %s", ErrUnavailable, a.cfg.RPCTimeout))
	defer cancelTimeout()
	deadline, _ := ctx.Deadline()
	ttl := time.Until(deadline).Milliseconds()
	if ttl <= 0 {
		return nil, context.Cause(ctx)
	}

	id := newCorrelationID()
	replies := make(chan []byte, 1)
	a.mu.Lock()
	a.calls[id] = replies
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.calls, id)
		a.mu.Unlock()
	}()

	s, err := a.publish(ctx, a.topo.master, key, kind, body, amqp.Publishing{
		DeliveryMode: mode, CorrelationId: id, ReplyTo: a.topo.replyQueue().name, Expiration: strconv.FormatInt(ttl, 10),
	})
	if err != nil {
		return nil, err
	}
	select {
	case reply := <-replies:
		return reply, nil
	case <-s.done:
		return nil, fmt.Errorf("%w: connection lost while waiting for the master's reply", ErrUnavailable)
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// decodeReply decodes an answer, or the master's error in its place.
func decodeReply[T any](reply []byte, decode func([]byte) (T, error)) (T, error) {
	var zero T
	kind, err := PeekKind(reply)
	if err != nil {
		return zero, fmt.Errorf("reply: %w", err)
	}
	if kind == KindError {
		re, err := DecodeError(reply)
		if err != nil {
			return zero, err
		}
		return zero, re
	}
	return decode(reply)
}

// dispatchReply hands a reply to the call waiting for it. Replies to calls
// that gave up (timeout, lost connection) are dropped.
func (a *AMQP) dispatchReply(_ context.Context, _ *amqp.Channel, d *amqp.Delivery) {
	a.mu.Lock()
	w := a.calls[d.CorrelationId]
	a.mu.Unlock()
	if w != nil {
		select {
		case w <- d.Body:
		default: // a repeat of a reply already delivered
		}
	} else {
		a.log.Debug("late reply dropped", "correlation_id", d.CorrelationId, "type", d.Type)
	}
	a.ack(d)
}

func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// ---- RPC, master side ----

// HandleBatches makes this node serve hubs' batches with h. The first call
// starts consuming the master's batch queue; a later call replaces h.
// A batch is acknowledged to RabbitMQ only after h returned and the reply
// is published; h's error goes back to the hub (which retries).
func (a *AMQP) HandleBatches(h BatchHandler) {
	if a.batchHandler.Swap(&h) != nil {
		return
	}
	a.serve(a.topo.batchQueue(), a.serveBatch)
}

// ServeBlocks makes this node answer fetches with f. The first call starts
// consuming the master's fetch queue; a later call replaces f.
func (a *AMQP) ServeBlocks(f BlockFetcher) {
	if a.blockFetcher.Swap(&f) != nil {
		return
	}
	a.serve(a.topo.fetchQueue(), a.serveFetch)
}

func (a *AMQP) serve(q queue, handle func(context.Context, *amqp.Channel, *amqp.Delivery)) {
	// Requests are independent: handle up to Prefetch at once, as
	// InProc lets every hub call the master at the same time.
	if err := a.goConsume(consumer{queue: q, workers: a.cfg.Prefetch, handle: handle}); err != nil {
		a.log.Error("cannot serve", "queue", q.name, "err", err)
	}
}

func (a *AMQP) serveBatch(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery) {
	reply, err := a.answerBatch(ctx, d.Body)
	a.respond(ctx, ch, d, reply, err)
}

func (a *AMQP) answerBatch(ctx context.Context, body []byte) ([]byte, error) {
	b, err := DecodeBatch(body)
	if err != nil {
		return nil, err
	}
	h := *a.batchHandler.Load()
	if h == nil {
		return nil, ErrNoReceiver
	}
	refused, err := h(ctx, b)
	if err != nil {
		return nil, err
	}
	return EncodeRefusals(refused), nil
}

func (a *AMQP) serveFetch(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery) {
	reply, err := a.answerFetch(ctx, d.Body)
	a.respond(ctx, ch, d, reply, err)
}

func (a *AMQP) answerFetch(ctx context.Context, body []byte) ([]byte, error) {
	from, n, err := DecodeFetch(body)
	if err != nil {
		return nil, err
	}
	f := *a.blockFetcher.Load()
	if f == nil {
		return nil, ErrNoReceiver
	}
	blocks, err := f(ctx, from, n)
	if err != nil {
		return nil, err
	}
	return a.fitBlocks(blocks)
}

// fitBlocks encodes as many blocks as fit in a moderate reply, at least
// one: the caller asks again from where the reply stops.
func (a *AMQP) fitBlocks(blocks []*chain.Block) ([]byte, error) {
	size := 4
	for i, b := range blocks {
		size += blockSize(b)
		if i > 0 && size > min(fetchBudget, a.cfg.MaxMessageBytes) {
			blocks = blocks[:i]
			break
		}
	}
	reply := EncodeBlocks(blocks)
	if len(reply) > a.cfg.MaxMessageBytes {
		return nil, fmt.Errorf("%w: block %d is %d bytes on the wire, limit %d", ErrTooLarge, blocks[0].Header.Height, len(reply), a.cfg.MaxMessageBytes)
	}
	return reply, nil
}

// respond publishes the answer (or the error) to the caller's reply queue,
// then acknowledges the request. Both go out on the consuming channel, in
// that order, so RabbitMQ has the reply before it forgets the request. A
// handler that failed because the bus is closing gets no answer and no
// ack: the request stays queued for the next start.
func (a *AMQP) respond(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery, reply []byte, err error) {
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		a.log.Debug("request failed", "type", d.Type, "err", err)
		reply = EncodeError(err)
	}
	if d.ReplyTo != "" {
		kind, _ := PeekKind(reply)
		perr := ch.PublishWithContext(context.WithoutCancel(ctx), "", d.ReplyTo, false, false, amqp.Publishing{
			Body: reply, ContentType: contentType, Type: KindName(kind), Timestamp: time.Now(),
			Headers: amqp.Table{headerNode: a.cfg.Node}, CorrelationId: d.CorrelationId, Expiration: d.Expiration,
		})
		if perr != nil {
			a.log.Warn("reply not sent; the request will be delivered again", "type", d.Type, "err", perr)
			return
		}
	}
	a.ack(d)
}

// ---- fan-out, receiving side ----

// ConsumeBlocks delivers the blocks in this node's queue (name is the hub
// id) to h, in order, until ctx ends; it returns nil then, or ErrClosed
// after Close. Each block is acknowledged after h returns, also when h
// fails: a hub fetches the blocks it could not take, and a redelivered bad
// block would only fail again.
func (a *AMQP) ConsumeBlocks(ctx context.Context, name string, h BlockHandler) error {
	return a.consumeFanout(ctx, name, a.topo.blockQueue(name), func(ctx context.Context, body []byte) error {
		blk, err := DecodeBlock(body)
		if err != nil {
			return err
		}
		return h(ctx, blk)
	})
}

// ConsumeValidations delivers the validations in this node's queue (name
// is MasterNode or the hub id) to h, in order, until ctx ends. Each is
// acknowledged after h returns, also when h fails (a forged or unknown
// validation stays bad).
func (a *AMQP) ConsumeValidations(ctx context.Context, name string, h ValidationHandler) error {
	return a.consumeFanout(ctx, name, a.topo.validationQueue(name), func(ctx context.Context, body []byte) error {
		v, err := DecodeValidation(body)
		if err != nil {
			return err
		}
		return h(ctx, v)
	})
}

// ConsumeDeviceChanges calls fn with the uid of every device change in this
// hub's registry queue (name is the hub id), in order, until ctx ends; it
// returns nil then, or ErrClosed after Close. Each change is acknowledged
// after fn returns.
func (a *AMQP) ConsumeDeviceChanges(ctx context.Context, name string, fn func(uid string)) error {
	return a.consumeFanout(ctx, name, a.topo.registryQueue(name), func(_ context.Context, body []byte) error {
		uid, err := DecodeDeviceChange(body)
		if err != nil {
			return err
		}
		fn(uid)
		return nil
	})
}

func (a *AMQP) consumeFanout(ctx context.Context, name string, q queue, h func(context.Context, []byte) error) error {
	if name == "" || len(name) > maxNodeLength {
		return fmt.Errorf("bus: consume %q: want a name of 1 to %d bytes", name, maxNodeLength)
	}
	release, err := a.claim(q.name)
	if err != nil {
		return err
	}
	defer release()
	jctx, cancel := a.join(ctx)
	defer cancel()
	a.runConsumer(jctx, consumer{queue: q, workers: 1, handle: func(ctx context.Context, _ *amqp.Channel, d *amqp.Delivery) {
		err := h(ctx, d.Body)
		if err != nil && ctx.Err() != nil {
			return // stopping: leave it for the next consumer
		}
		if err != nil {
			a.log.Warn("message handler failed; message dropped", "queue", q.name, "type", d.Type, "err", err)
		}
		a.ack(d)
	}})
	if ctx.Err() == nil && a.ctx.Err() != nil {
		return ErrClosed
	}
	return nil
}

func (a *AMQP) ack(d *amqp.Delivery) {
	if err := d.Ack(false); err != nil {
		// The channel is gone; RabbitMQ delivers the message again.
		a.log.Debug("ack failed", "type", d.Type, "err", err)
	}
}

// ---- consumers ----

// consumer consumes one queue, with reconnects.
type consumer struct {
	queue   queue
	workers int // deliveries handled at once; 1 keeps their order
	handle  func(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery)
}

// claim reserves queue for one consumer in this process, as InProc allows
// one subscriber per name, and registers it with Close.
func (a *AMQP) claim(queue string) (release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	if a.claimed[queue] {
		return nil, fmt.Errorf("bus: queue %s already has a consumer", queue)
	}
	a.claimed[queue] = true
	a.consumers.Add(1)
	return func() {
		a.mu.Lock()
		delete(a.claimed, queue)
		a.mu.Unlock()
		a.consumers.Done()
	}, nil
}

// goConsume runs a consumer in the background until Close.
func (a *AMQP) goConsume(c consumer) error {
	release, err := a.claim(c.queue.name)
	if err != nil {
		return err
	}
	go func() {
		defer release()
		a.runConsumer(a.ctx, c)
	}()
	return nil
}

// runConsumer consumes until ctx ends, starting again on a new channel
// whenever the channel or the connection drops.
func (a *AMQP) runConsumer(ctx context.Context, c consumer) {
	b := backoff{}
	for {
		s, err := a.session(ctx)
		if err != nil {
			return // ctx ended
		}
		started, err := a.consumeChannel(ctx, s, c)
		if ctx.Err() != nil {
			return
		}
		if started {
			b = backoff{}
		}
		wait := b.next()
		level := slog.LevelWarn
		if s.conn.IsClosed() {
			level = slog.LevelDebug // the supervisor reports the lost connection
		}
		a.log.Log(ctx, level, "consumer stopped; resuming", "queue", c.queue.name, "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// consumeChannel consumes on a new channel until it closes or ctx ends,
// then waits for the handlers in flight, so their acks go out before the
// channel closes; RabbitMQ requeues whatever was not acknowledged. started
// reports whether it got as far as consuming.
func (a *AMQP) consumeChannel(ctx context.Context, s *session, c consumer) (started bool, err error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := a.topo.declareExchanges(ch); err != nil {
		return false, err
	}
	if err := c.queue.declare(ch); err != nil {
		return false, err
	}
	if err := ch.Qos(a.cfg.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("set prefetch: %w", err)
	}
	// Exclusive: a second process under the same node id waits here
	// (retrying) instead of splitting the queue with the first.
	deliveries, err := ch.Consume(c.queue.name, "", false, true, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", c.queue.name, err)
	}

	var inflight sync.WaitGroup
	defer inflight.Wait()
	slots := make(chan struct{}, max(c.workers, 1))
	for ctx.Err() == nil { // checked first: select picks at random among ready cases
		select {
		case <-ctx.Done():
		case d, ok := <-deliveries:
			if !ok {
				select {
				case e := <-closed:
					if e != nil {
						return true, e
					}
				default: // the broker cancelled the consumer (queue deleted?); declaring again fixes it
				}
				return true, errors.New("channel closed or consumer cancelled")
			}
			if c.workers <= 1 {
				c.handle(ctx, ch, &d)
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return true, nil // not acknowledged: RabbitMQ delivers it again
			}
			inflight.Add(1)
			go func() {
				defer func() { <-slots; inflight.Done() }()
				c.handle(ctx, ch, &d)
			}()
		}
	}
	return true, nil
}

// ---- small helpers ----

// backoff doubles from firstBackoff up to maxBackoff.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	b.d = b.peek()
	return b.d
}

func (b *backoff) peek() time.Duration {
	if b.d == 0 {
		return firstBackoff
	}
	return min(2*b.d, maxBackoff)
}

// sleep waits for d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// DeleteTopology removes the queues and exchanges of the network named
// prefix for the given nodes (the master's are always removed): for tests,
// and for operators retiring a network. Queues are deleted with whatever
// they still hold.
func DeleteTopology(url, prefix string, nodes []string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("delete topology %s: %w", prefix, err)
	}
	defer conn.Close()
	topo := newTopology(prefix, MasterNode)
	queues := []string{topo.batchQueue().name, topo.fetchQueue().name}
	for _, id := range nodes {
		queues = append(queues, newTopology(prefix, id).replyQueue().name, topo.blockQueue(id).name,
			topo.validationQueue(id).name, topo.registryQueue(id).name)
	}
	queues = append(queues, newTopology(prefix, MasterNode).replyQueue().name, topo.validationQueue(MasterNode).name)
	// One channel per operation: a failed one closes its channel.
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, ex := range []string{topo.master, topo.blocks, topo.valid, topo.registry} {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(ex, false, false)
			_ = ch.Close()
		}
	}
	return nil
}
