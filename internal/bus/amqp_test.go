package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cissan/internal/chain"
)

// TestAMQPReconnect cuts the TCP connections of a hub and of the master
// while batches and blocks flow, as a RabbitMQ restart or a network fault
// would, and checks that both reconnect, that callers only ever see
// errors worth a retry, and that nothing RabbitMQ or the master
// acknowledged is lost.
func TestAMQPReconnect(t *testing.T) {
	n := newAMQPNet(t)
	master, hub := n.node(MasterNode).(*AMQP), n.node("hub-1").(*AMQP)

	var handled, received sync.Map // the master's durable pool; the hub's chain
	master.HandleBatches(func(_ context.Context, b *Batch) ([]Refusal, error) {
		handled.Store(b.Seq, true)
		return nil, nil
	})
	startConsumer(t, func(ctx context.Context) error {
		return hub.ConsumeBlocks(ctx, "hub-1", func(_ context.Context, b *chain.Block) error {
			received.Store(b.Header.Height, true)
			return nil
		})
	})

	// The hub's forwarder and the master's minter: each message again
	// until it is acknowledged, as the real ones do.
	cutsDone := make(chan struct{})
	var acked, published atomic.Uint64 // how many have been acknowledged
	var retries atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for seq := uint64(1); !isClosed(cutsDone) || seq <= 20; seq++ {
			if !untilAcked(t, &retries, func(ctx context.Context) error {
				_, err := hub.SubmitBatch(ctx, &Batch{HubID: "hub-1", Seq: seq, Entries: [][]byte{[]byte("e")}})
				return err
			}) {
				return
			}
			acked.Store(seq)
		}
	}()
	go func() {
		defer wg.Done()
		for h := uint64(0); !isClosed(cutsDone) || h < 20; h++ {
			if !untilAcked(t, &retries, func(ctx context.Context) error { return master.PublishBlock(ctx, testBlock(h)) }) {
				return
			}
			published.Store(h + 1)
		}
	}()

	for i, victims := range [][]*AMQP{{hub}, {master}, {hub, master}} {
		waitFor(t, "traffic", func() bool { return acked.Load() >= uint64(10*(i+1)) && published.Load() >= uint64(10*(i+1)) })
		for _, a := range victims {
			before := a.reconnects.Load()
			cutConnection(t, a)
			waitFor(t, a.cfg.Node+" reconnected", func() bool { return a.reconnects.Load() > before })
		}
	}
	close(cutsDone)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d batches and %d blocks acknowledged; %d attempts retried", acked.Load(), published.Load(), retries.Load())

	for seq := uint64(1); seq <= acked.Load(); seq++ {
		if _, ok := handled.Load(seq); !ok {
			t.Errorf("batch %d was answered but the master never handled it", seq)
		}
	}
	waitFor(t, "every confirmed block at the hub", func() bool {
		for h := uint64(0); h < published.Load(); h++ {
			if _, ok := received.Load(h); !ok {
				return false
			}
		}
		return true
	})
	if _, err := hub.SubmitBatch(context.Background(), &Batch{HubID: "hub-1", Seq: 1 << 40}); err != nil {
		t.Fatalf("SubmitBatch after reconnecting: %v", err)
	}
}

// untilAcked runs send until it succeeds, for at most 30s, and checks that
// every failure on the way says the message may be sent again.
func untilAcked(t *testing.T, retries *atomic.Int64, send func(context.Context) error) bool {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := send(ctx)
		cancel()
		if err == nil {
			return true
		}
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a failure callers cannot recognise as worth a retry: %v", err)
			return false
		}
		if time.Now().After(deadline) {
			t.Errorf("still failing after 30s: %v", err)
			return false
		}
		retries.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
}

// cutConnection closes a bus's TCP connection under it.
func cutConnection(t *testing.T, a *AMQP) {
	t.Helper()
	a.mu.Lock()
	s := a.sess
	a.mu.Unlock()
	if s == nil {
		t.Fatalf("%s is not connected", a.cfg.Node)
	}
	if err := s.raw.Close(); err != nil {
		t.Fatal(err)
	}
}

// Bytes that are not a message are dropped with a log line, never handed
// to a handler and never delivered again; a malformed request gets an
// error reply that says it can never succeed.
func TestAMQPMalformedMessages(t *testing.T) {
	n := newAMQPNet(t)
	master, hub := n.node(MasterNode).(*AMQP), n.node("hub-1").(*AMQP)
	heights := make(chan uint64, 10)
	startConsumer(t, func(ctx context.Context) error {
		return hub.ConsumeBlocks(ctx, "hub-1", func(_ context.Context, b *chain.Block) error {
			heights <- b.Header.Height
			return nil
		})
	})
	ctx := context.Background()
	if _, err := master.publish(ctx, master.topo.blocks, "", KindBlock, []byte("not a block"), amqp.Publishing{}); err != nil {
		t.Fatal(err)
	}
	if err := master.PublishBlock(ctx, testBlock(4)); err != nil {
		t.Fatal(err)
	}
	if h := recv(t, heights, "block"); h != 4 {
		t.Fatalf("got block %d, want 4", h)
	}

	calls := 0
	master.HandleBatches(func(context.Context, *Batch) ([]Refusal, error) { calls++; return nil, nil })
	reply, err := hub.call(ctx, keyBatch, KindBatch, []byte{1, 1, 0}, amqp.Persistent)
	if err != nil {
		t.Fatal(err)
	}
	_, err = decodeReply(reply, DecodeRefusals)
	if !errors.Is(err, chain.ErrInvalid) {
		t.Fatalf("reply to a malformed batch = %v, want an error matching chain.ErrInvalid", err)
	}
	if calls != 0 {
		t.Fatal("the batch handler saw a malformed batch")
	}
}

// A request whose caller gave up expires in the master's queue: a master
// that comes back after a long absence does not work through batches
// nobody waits for.
func TestAMQPAbandonedRequestsExpire(t *testing.T) {
	n := newAMQPNet(t)
	hub := n.node("hub-1")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := hub.SubmitBatch(ctx, &Batch{HubID: "hub-1", Seq: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SubmitBatch with no master = %v, want context.DeadlineExceeded", err)
	}
	time.Sleep(time.Second) // well past the request's expiration, even on a busy broker

	var seqs sync.Map
	n.node(MasterNode).HandleBatches(func(_ context.Context, b *Batch) ([]Refusal, error) {
		seqs.Store(b.Seq, true)
		return nil, nil
	})
	if _, err := hub.SubmitBatch(context.Background(), &Batch{HubID: "hub-1", Seq: 2}); err != nil {
		t.Fatal(err)
	}
	if _, ok := seqs.Load(uint64(1)); ok {
		t.Fatal("the master handled a request whose caller had given up long before")
	}
}

func TestAMQPConfigErrors(t *testing.T) {
	for _, cfg := range []AMQPConfig{{Node: "hub-1"}, {URL: "amqp://127.0.0.1/"}} {
		if _, err := DialAMQP(context.Background(), cfg); err == nil {
			t.Errorf("DialAMQP(%+v) succeeded", cfg)
		}
	}
	_, err := DialAMQP(context.Background(), AMQPConfig{URL: "amqp://nobody:secret@127.0.0.1:1/", Node: "hub-1"})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("dial of a closed port = %v, want an error without the password", err)
	}
}

// BenchmarkAMQPSubmitBatch measures hub -> master batches of 1,000 entries
// of ~300 bytes over RabbitMQ: persistent, confirmed, into a quorum queue,
// handled by a master that does nothing, and answered. Each hub sends one
// batch at a time, as the forwarder does.
func BenchmarkAMQPSubmitBatch(b *testing.B) {
	entries := make([][]byte, 1000)
	for i := range entries {
		entries[i] = []byte(fmt.Sprintf("%0300d", i))
	}
	for _, hubs := range []int{1, 4} {
		b.Run(fmt.Sprintf("hubs=%d", hubs), func(b *testing.B) {
			n := newAMQPNet(b)
			n.node(MasterNode).HandleBatches(func(context.Context, *Batch) ([]Refusal, error) { return nil, nil })
			nodes := make([]node, hubs)
			for i := range nodes {
				nodes[i] = n.node(fmt.Sprintf("hub-%d", i+1))
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for i, bus := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for seq := next.Add(1); seq <= int64(b.N); seq = next.Add(1) {
						batch := &Batch{HubID: fmt.Sprintf("hub-%d", i+1), Seq: uint64(seq), Entries: entries, Signature: make([]byte, 64)}
						if _, err := bus.SubmitBatch(context.Background(), batch); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*len(entries))/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
