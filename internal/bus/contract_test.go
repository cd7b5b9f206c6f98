package bus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cissan/internal/chain"
)

// node is the bus as one node sees it: InProc's methods, which every
// implementation has.
type node interface {
	SubmitBatch(ctx context.Context, b *Batch) ([]Refusal, error)
	FetchBlocks(ctx context.Context, from uint64, max int) ([]*chain.Block, error)
	PublishValidation(ctx context.Context, v *chain.Validation) error
	PublishBlock(ctx context.Context, b *chain.Block) error
	HandleBatches(h BatchHandler)
	ServeBlocks(f BlockFetcher)
	ConsumeBlocks(ctx context.Context, name string, h BlockHandler) error
	ConsumeValidations(ctx context.Context, name string, h ValidationHandler) error
	PublishDeviceChange(ctx context.Context, uid string) error
	ConsumeDeviceChanges(ctx context.Context, name string, fn func(uid string)) error
}

var (
	_ node = (*InProc)(nil)
	_ node = (*AMQP)(nil)
)

// testNet is one isolated network of nodes on one implementation.
type testNet struct {
	// node returns the bus the node with this id uses, opening it on
	// first use.
	node func(id string) node
	// subscribed reports whether id's consumer of a kind of message
	// (blocks, validations or devices) is registered, so a test can
	// publish knowing who will get it.
	subscribed func(id string, kind subscription) bool
	// stop closes id's bus as if its process went away; nil where a
	// node's queue does not outlive its consumer (InProc).
	stop func(id string)
}

type netFactory func(t testing.TB) *testNet

// subscription is a kind of fan-out consumer.
type subscription int

const (
	blocks subscription = iota
	validations
	devices
)

// TestContract runs one suite against every implementation of the bus.
func TestContract(t *testing.T) {
	for _, impl := range []struct {
		name string
		make netFactory
	}{{"inproc", newInProcNet}, {"amqp", newAMQPNet}} {
		t.Run(impl.name, func(t *testing.T) {
			for _, c := range []struct {
				name string
				run  func(*testing.T, *testNet)
			}{
				{"BatchRoundTrip", testBatchRoundTrip},
				{"BatchHandlerError", testBatchHandlerError},
				{"Fetch", testFetch},
				{"BlockFanout", testBlockFanout},
				{"ValidationFanout", testValidationFanout},
				{"HandlerErrorStillAcks", testHandlerErrorStillAcks},
				{"CancelUnblocks", testCancelUnblocks},
				{"OneConsumerPerName", testOneConsumerPerName},
				{"QueuedWhileAway", testQueuedWhileAway},
				{"DeviceChangeFanout", testDeviceChangeFanout},
			} {
				t.Run(c.name, func(t *testing.T) { c.run(t, impl.make(t)) })
			}
		})
	}
}

func testBatchRoundTrip(t *testing.T, n *testNet) {
	n.node(MasterNode).HandleBatches(func(_ context.Context, b *Batch) ([]Refusal, error) {
		var refused []Refusal
		for _, e := range b.Entries {
			if bytes.HasPrefix(e, []byte("dup")) {
				refused = append(refused, Refusal{UID: fmt.Sprintf("%s/%d/%s", b.HubID, b.Seq, e), Reason: "uid used with other content"})
			}
		}
		return refused, nil
	})
	// Two hubs at once, many calls each: every caller gets its own answer.
	var wg sync.WaitGroup
	for _, hub := range []string{"hub-1", "hub-2"} {
		bus := n.node(hub)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= 20; seq++ {
				b := &Batch{HubID: hub, Seq: seq, Entries: [][]byte{[]byte("ok-1"), []byte("dup-2"), []byte("ok-3")}, Signature: []byte("sig")}
				refused, err := bus.SubmitBatch(context.Background(), b)
				if err != nil {
					t.Errorf("%s batch %d: %v", hub, seq, err)
					return
				}
				want := []Refusal{{UID: fmt.Sprintf("%s/%d/dup-2", hub, seq), Reason: "uid used with other content"}}
				if !reflect.DeepEqual(refused, want) {
					t.Errorf("%s batch %d: refusals %v, want %v", hub, seq, refused, want)
					return
				}
			}
		}()
	}
	wg.Wait()

	// The batch arrives exactly as sent.
	sent := &Batch{HubID: "hub-1", Seq: 99, Entries: [][]byte{[]byte("a"), bytes.Repeat([]byte{0xff}, 300)}, Signature: bytes.Repeat([]byte{7}, 64)}
	got := make(chan *Batch, 1)
	n.node(MasterNode).HandleBatches(func(_ context.Context, b *Batch) ([]Refusal, error) {
		got <- b
		return nil, nil
	})
	refused, err := n.node("hub-1").SubmitBatch(context.Background(), sent)
	if err != nil || len(refused) != 0 {
		t.Fatalf("SubmitBatch = %v, %v; want no refusals", refused, err)
	}
	if b := recv(t, got, "batch"); !reflect.DeepEqual(b, sent) {
		t.Fatalf("master got %+v, want %+v", b, sent)
	}
}

func testBatchHandlerError(t *testing.T, n *testNet) {
	n.node(MasterNode).HandleBatches(func(_ context.Context, b *Batch) ([]Refusal, error) {
		if b.Seq == 1 {
			return nil, fmt.Errorf("%w: batch %d: signature does not verify", chain.ErrInvalid, b.Seq)
		}
		return nil, errors.New("disk full")
	})
	hub := n.node("hub-1")
	_, err := hub.SubmitBatch(context.Background(), &Batch{HubID: "hub-1", Seq: 1})
	if !errors.Is(err, chain.ErrInvalid) {
		t.Fatalf("SubmitBatch of an invalid batch = %v, want an error matching chain.ErrInvalid", err)
	}
	_, err = hub.SubmitBatch(context.Background(), &Batch{HubID: "hub-1", Seq: 2})
	if err == nil || errors.Is(err, chain.ErrInvalid) {
		t.Fatalf("SubmitBatch failing for another reason = %v, want an error not matching chain.ErrInvalid", err)
	}
}

func testFetch(t *testing.T, n *testNet) {
	n.node(MasterNode).ServeBlocks(func(_ context.Context, from uint64, max int) ([]*chain.Block, error) {
		var out []*chain.Block
		for h := from; h < 10 && len(out) < max; h++ {
			out = append(out, testBlock(h))
		}
		return out, nil
	})
	hub := n.node("hub-1")
	got, err := hub.FetchBlocks(context.Background(), 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d blocks, want 4", len(got))
	}
	for i, b := range got {
		checkBlock(t, b, testBlock(uint64(3+i)))
	}
	if got, err := hub.FetchBlocks(context.Background(), 10, 4); err != nil || len(got) != 0 {
		t.Fatalf("fetch past the top = %d blocks, %v; want none", len(got), err)
	}
}

func testBlockFanout(t *testing.T, n *testNet) {
	master := n.node(MasterNode)
	got := map[string]chan *chain.Block{}
	for _, hub := range []string{"hub-1", "hub-2"} {
		c := make(chan *chain.Block, 10)
		got[hub] = c
		startConsumer(t, func(ctx context.Context) error {
			return n.node(hub).ConsumeBlocks(ctx, hub, func(_ context.Context, b *chain.Block) error {
				c <- b
				return nil
			})
		})
		waitFor(t, hub+" subscribed", func() bool { return n.subscribed(hub, blocks) })
	}
	for h := uint64(0); h < 3; h++ {
		if err := master.PublishBlock(context.Background(), testBlock(h)); err != nil {
			t.Fatal(err)
		}
	}
	for hub, c := range got {
		for h := uint64(0); h < 3; h++ {
			checkBlock(t, recv(t, c, hub+" block"), testBlock(h))
		}
	}
}

func testValidationFanout(t *testing.T, n *testNet) {
	nodes := []string{MasterNode, "hub-1", "hub-2"}
	got := map[string]chan *chain.Validation{}
	for _, id := range nodes {
		c := make(chan *chain.Validation, 10)
		got[id] = c
		startConsumer(t, func(ctx context.Context) error {
			return n.node(id).ConsumeValidations(ctx, id, func(_ context.Context, v *chain.Validation) error {
				c <- v
				return nil
			})
		})
		waitFor(t, id+" subscribed", func() bool { return n.subscribed(id, validations) })
	}
	v := testValidation("hub-1", 5)
	if err := n.node("hub-1").PublishValidation(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	for _, id := range nodes {
		if g := recv(t, got[id], id+" validation"); !reflect.DeepEqual(g, v) {
			t.Fatalf("%s got %+v, want %+v", id, g, v)
		}
	}
}

// A handler error drops the message (the hub fetches what it missed):
// it is not delivered again, not even to the next consumer. (A handler
// that fails while its consumer is stopping may see its message again:
// the failure may come from the stop.)
func testHandlerErrorStillAcks(t *testing.T, n *testNet) {
	master, hub := n.node(MasterNode), n.node("hub-1")
	heights := make(chan uint64, 10)
	start := func() (stop func() error) {
		stop = startConsumer(t, func(ctx context.Context) error {
			return hub.ConsumeBlocks(ctx, "hub-1", func(_ context.Context, b *chain.Block) error {
				heights <- b.Header.Height
				if b.Header.Height == 1 {
					return errors.New("block 1: missing blocks from 0")
				}
				return nil
			})
		})
		waitFor(t, "hub-1 subscribed", func() bool { return n.subscribed("hub-1", blocks) })
		return stop
	}
	expect := func(want uint64) {
		t.Helper()
		if h := recv(t, heights, "block"); h != want {
			t.Fatalf("got block %d, want %d: a block was delivered again", h, want)
		}
	}
	publish := func(h uint64) {
		t.Helper()
		if err := master.PublishBlock(context.Background(), testBlock(h)); err != nil {
			t.Fatal(err)
		}
	}
	stop := start()
	publish(1)
	publish(2)
	expect(1)
	expect(2) // blocks are handled in order: block 1's handler has returned
	if err := stop(); err != nil {
		t.Fatalf("ConsumeBlocks returned %v after its context ended, want nil", err)
	}
	start()
	publish(3)
	expect(3)
	select {
	case h := <-heights:
		t.Fatalf("unexpected block %d", h)
	case <-time.After(200 * time.Millisecond):
	}
}

func testCancelUnblocks(t *testing.T, n *testNet) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck := func(ctx context.Context) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	master, hub := n.node(MasterNode), n.node("hub-1")
	master.HandleBatches(func(ctx context.Context, _ *Batch) ([]Refusal, error) { return nil, stuck(ctx) })
	master.ServeBlocks(func(ctx context.Context, _ uint64, _ int) ([]*chain.Block, error) { return nil, stuck(ctx) })

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := within(t, func() ([]Refusal, error) { return hub.SubmitBatch(ctx, &Batch{HubID: "hub-1", Seq: 1}) }); !errors.Is(err, context.Canceled) {
		t.Fatalf("SubmitBatch with a cancelled context = %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	if _, err := within(t, func() ([]*chain.Block, error) { return hub.FetchBlocks(dctx, 0, 1) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FetchBlocks past its deadline = %v, want context.DeadlineExceeded", err)
	}
	// Consumers return nil when their context ends, even inside a handler.
	for _, kind := range []subscription{blocks, validations} {
		stop := startConsumer(t, func(ctx context.Context) error {
			if kind == blocks {
				return hub.ConsumeBlocks(ctx, "hub-1", func(ctx context.Context, _ *chain.Block) error { return stuck(ctx) })
			}
			return hub.ConsumeValidations(ctx, "hub-1", func(ctx context.Context, _ *chain.Validation) error { return stuck(ctx) })
		})
		waitFor(t, "subscribed", func() bool { return n.subscribed("hub-1", kind) })
		if kind == blocks {
			_ = master.PublishBlock(context.Background(), testBlock(0))
		} else {
			_ = hub.PublishValidation(context.Background(), testValidation("hub-1", 0))
		}
		if _, err := within(t, func() (struct{}, error) { return struct{}{}, stop() }); err != nil {
			t.Fatalf("consumer returned %v after its context ended, want nil", err)
		}
	}
}

func testOneConsumerPerName(t *testing.T, n *testNet) {
	hub := n.node("hub-1")
	startConsumer(t, func(ctx context.Context) error {
		return hub.ConsumeBlocks(ctx, "hub-1", func(context.Context, *chain.Block) error { return nil })
	})
	waitFor(t, "hub-1 subscribed", func() bool { return n.subscribed("hub-1", blocks) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hub.ConsumeBlocks(ctx, "hub-1", nil); err == nil || ctx.Err() != nil {
		t.Fatalf("a second consumer under one name = %v, want an error at once", err)
	}
}

// Blocks published while a hub is down wait in its queue. InProc keeps a
// queue only while its consumer runs (a hub in the same process is never
// away), so this applies to durable implementations only.
func testQueuedWhileAway(t *testing.T, n *testNet) {
	if n.stop == nil {
		t.Skip("queues live only while subscribed in this implementation")
	}
	n.node("hub-1") // the hub ran once: its queue exists
	n.stop("hub-1")
	master := n.node(MasterNode)
	for h := uint64(0); h < 3; h++ {
		if err := master.PublishBlock(context.Background(), testBlock(h)); err != nil {
			t.Fatal(err)
		}
	}
	c := make(chan *chain.Block, 10)
	startConsumer(t, func(ctx context.Context) error {
		return n.node("hub-1").ConsumeBlocks(ctx, "hub-1", func(_ context.Context, b *chain.Block) error {
			c <- b
			return nil
		})
	})
	for h := uint64(0); h < 3; h++ {
		checkBlock(t, recv(t, c, "queued block"), testBlock(h))
	}
}

// The registry's device changes reach every hub, in order, each once.
func testDeviceChangeFanout(t *testing.T, n *testNet) {
	hubs := []string{"hub-1", "hub-2"}
	got := map[string]chan string{}
	for _, hub := range hubs {
		c := make(chan string, 10)
		got[hub] = c
		startConsumer(t, func(ctx context.Context) error {
			return n.node(hub).ConsumeDeviceChanges(ctx, hub, func(uid string) { c <- uid })
		})
		waitFor(t, hub+" subscribed", func() bool { return n.subscribed(hub, devices) })
	}
	reg := n.node(RegistryNode)
	uids := []string{"dev-1", "dev-2", "dev-1"}
	for _, uid := range uids {
		if err := reg.PublishDeviceChange(context.Background(), uid); err != nil {
			t.Fatal(err)
		}
	}
	for _, hub := range hubs {
		for _, want := range uids {
			if uid := recv(t, got[hub], hub+" device change"); uid != want {
				t.Fatalf("%s got change of %q, want %q", hub, uid, want)
			}
		}
	}
	for _, hub := range hubs {
		select {
		case uid := <-got[hub]:
			t.Fatalf("%s got an extra change of %q", hub, uid)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ---- implementations ----

func newInProcNet(testing.TB) *testNet {
	b := NewInProc()
	return &testNet{
		node: func(string) node { return b },
		subscribed: func(id string, kind subscription) bool {
			b.mu.RLock()
			defer b.mu.RUnlock()
			switch kind {
			case blocks:
				return b.blockSubs[id] != nil
			case validations:
				return b.validations[id] != nil
			default:
				return b.devices[id] != nil
			}
		},
	}
}

// newAMQPNet gives a test its own network on the RabbitMQ at
// CISSAN_TEST_AMQP_URL: every exchange and queue under a fresh random
// prefix, all deleted when the test ends.
func newAMQPNet(t testing.TB) *testNet {
	url := testAMQPURL(t)
	prefix := "cissan-test-" + randomHex(6)
	var mu sync.Mutex
	open := map[string]*AMQP{}
	seen := map[string]bool{}
	get := func(id string) *AMQP {
		mu.Lock()
		defer mu.Unlock()
		if a := open[id]; a != nil {
			return a
		}
		a, err := DialAMQP(context.Background(), AMQPConfig{URL: url, Prefix: prefix, Node: id, RPCTimeout: 10 * time.Second, Log: testLog(t)})
		if err != nil {
			t.Fatalf("dial %s: %v", id, err)
		}
		open[id], seen[id] = a, true
		return a
	}
	stop := func(id string) {
		mu.Lock()
		a := open[id]
		delete(open, id)
		mu.Unlock()
		if a != nil {
			if err := a.Close(); err != nil {
				t.Errorf("close %s: %v", id, err)
			}
		}
	}
	t.Cleanup(func() {
		mu.Lock()
		ids := make([]string, 0, len(seen))
		for id := range seen {
			ids = append(ids, id)
		}
		mu.Unlock()
		for _, id := range ids {
			stop(id)
		}
		deleteTopology(t, url, prefix, ids)
	})
	return &testNet{
		node: func(id string) node { return get(id) },
		subscribed: func(id string, kind subscription) bool {
			a := get(id)
			q := a.topo.validationQueue(id)
			switch kind {
			case blocks:
				q = a.topo.blockQueue(id)
			case devices:
				q = a.topo.registryQueue(id)
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.claimed[q.name]
		},
		stop: stop,
	}
}

var (
	amqpProbe    sync.Once
	amqpProbeErr error
)

// testAMQPURL returns the test broker's URL, skipping the test when no
// RabbitMQ answers there, or failing it under CI=true, where one must.
func testAMQPURL(t testing.TB) string {
	url := os.Getenv("CISSAN_TEST_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	amqpProbe.Do(func() {
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
		if err == nil {
			err = conn.Close()
		}
		amqpProbeErr = err
	})
	if amqpProbeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ is required under CI=true, and %s does not answer: %v", redact(url), amqpProbeErr)
		}
		t.Skipf("no RabbitMQ at %s (%v): start one or set CISSAN_TEST_AMQP_URL; under CI=true this fails", redact(url), amqpProbeErr)
	}
	return url
}

// deleteTopology removes every queue and exchange a test network made.
func deleteTopology(t testing.TB, url, prefix string, nodes []string) {
	if err := DeleteTopology(url, prefix, nodes); err != nil {
		t.Errorf("clean up %s: %v", prefix, err)
	}
}

// ---- helpers ----

func testBlock(h uint64) *chain.Block {
	b := &chain.Block{
		Header: chain.Header{
			Network: chain.NetworkID{1, 2, 3}, Height: h, Prev: chain.Hash{byte(h), 9}, MintTimeMs: 1_700_000_000_000 + int64(h),
			EntryCount: 2, EntriesRoot: chain.Hash{4}, HistoryRoot: chain.Hash{5}, ControlRoot: chain.Hash{6},
		},
		Signature: bytes.Repeat([]byte{byte(h)}, 64),
		Entries:   [][]byte{[]byte(fmt.Sprintf("entry %d.0", h)), bytes.Repeat([]byte{byte(h)}, 300)},
	}
	if h%2 == 1 {
		b.Controls = [][]byte{[]byte(fmt.Sprintf("control %d", h))}
	}
	return b
}

func testValidation(hub string, h uint64) *chain.Validation {
	return &chain.Validation{
		HubID: hub, Height: h, BlockHash: chain.Hash{byte(h), 1, 2}, Verdict: chain.Reject,
		Reason: "entries_root does not match", Signature: bytes.Repeat([]byte{3}, 64),
	}
}

func checkBlock(t testing.TB, got, want *chain.Block) {
	t.Helper()
	if got.Header != want.Header || !bytes.Equal(got.Signature, want.Signature) ||
		!equalLists(got.Entries, want.Entries) || !equalLists(got.Controls, want.Controls) {
		t.Fatalf("got block %+v, want %+v", got, want)
	}
}

func equalLists(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// startConsumer runs a consumer until the test ends or stop is called; stop
// waits for it and returns what it returned.
func startConsumer(t testing.TB, run func(ctx context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func recv[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

// within runs f and fails the test if it takes over 10 seconds.
func within[T any](t testing.TB, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	c := make(chan result, 1)
	go func() {
		v, err := f()
		c <- result{v, err}
	}()
	r := recv(t, c, "return")
	return r.v, r.err
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 10s", what)
		}
	}
}

// testLog writes a bus's log into the test's output, or nowhere for
// benchmarks.
func testLog(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
