package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"cissan/internal/chain"
)

// ErrNoReceiver is returned when a message has nowhere to go yet.
var ErrNoReceiver = errors.New("bus: no receiver registered")

// InProc connects nodes in one process. Batches and fetches are direct
// calls into the master; blocks and validations fan out through one
// bounded queue per subscriber, so a slow hub pushes back on the master
// rather than growing memory without bound.
type InProc struct {
	mu          sync.RWMutex
	batches     BatchHandler
	fetch       BlockFetcher
	blockSubs   map[string]chan *chain.Block
	validations map[string]chan *chain.Validation
	devices     map[string]chan string
}

// QueueDepth bounds each subscriber's queue.
const QueueDepth = 256

// NewInProc returns an empty in-process bus.
func NewInProc() *InProc {
	return &InProc{
		blockSubs:   map[string]chan *chain.Block{},
		validations: map[string]chan *chain.Validation{},
		devices:     map[string]chan string{},
	}
}

// HandleBatches registers the master's batch handler.
func (b *InProc) HandleBatches(h BatchHandler) {
	b.mu.Lock()
	b.batches = h
	b.mu.Unlock()
}

// ServeBlocks registers the master's block fetcher.
func (b *InProc) ServeBlocks(f BlockFetcher) {
	b.mu.Lock()
	b.fetch = f
	b.mu.Unlock()
}

// SubmitBatch delivers a batch to the master and returns once the master
// has made it durable (or refused parts of it).
func (b *InProc) SubmitBatch(ctx context.Context, batch *Batch) ([]Refusal, error) {
	b.mu.RLock()
	h := b.batches
	b.mu.RUnlock()
	if h == nil {
		return nil, ErrNoReceiver
	}
	return h(ctx, batch)
}

// FetchBlocks asks the master for blocks from a height on.
func (b *InProc) FetchBlocks(ctx context.Context, from uint64, max int) ([]*chain.Block, error) {
	b.mu.RLock()
	f := b.fetch
	b.mu.RUnlock()
	if f == nil {
		return nil, ErrNoReceiver
	}
	return f(ctx, from, max)
}

// PublishBlock queues a block for every subscribed hub, waiting while a
// hub's queue is full.
func (b *InProc) PublishBlock(ctx context.Context, blk *chain.Block) error {
	return fanout(ctx, &b.mu, b.blockSubs, blk)
}

// PublishValidation queues a validation for every subscriber.
func (b *InProc) PublishValidation(ctx context.Context, v *chain.Validation) error {
	return fanout(ctx, &b.mu, b.validations, v)
}

// PublishDeviceChange tells every subscribed hub that the registry changed
// a device's status or token.
func (b *InProc) PublishDeviceChange(ctx context.Context, uid string) error {
	return fanout(ctx, &b.mu, b.devices, uid)
}

// fanout queues m for every subscriber in subs, waiting while a queue is
// full, so a slow subscriber pushes back on the publisher.
func fanout[T any](ctx context.Context, mu *sync.RWMutex, subs map[string]chan T, m T) error {
	mu.RLock()
	queues := make([]chan T, 0, len(subs))
	for _, c := range subs {
		queues = append(queues, c)
	}
	mu.RUnlock()
	for _, c := range queues {
		select {
		case c <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ConsumeBlocks delivers blocks to h until ctx ends. A handler error is
// logged by the caller's handler itself; the bus drops the message, since a
// hub recovers missed blocks by fetching.
func (b *InProc) ConsumeBlocks(ctx context.Context, name string, h BlockHandler) error {
	c := make(chan *chain.Block, QueueDepth)
	if err := subscribe(&b.mu, b.blockSubs, name, c); err != nil {
		return err
	}
	defer unsubscribe(&b.mu, b.blockSubs, name)
	return consume(ctx, c, func(blk *chain.Block) { _ = h(ctx, blk) })
}

// ConsumeValidations delivers validations to h until ctx ends.
func (b *InProc) ConsumeValidations(ctx context.Context, name string, h ValidationHandler) error {
	c := make(chan *chain.Validation, QueueDepth)
	if err := subscribe(&b.mu, b.validations, name, c); err != nil {
		return err
	}
	defer unsubscribe(&b.mu, b.validations, name)
	return consume(ctx, c, func(v *chain.Validation) { _ = h(ctx, v) })
}

// ConsumeDeviceChanges calls fn with the uid of every device the registry
// changes, until ctx ends.
func (b *InProc) ConsumeDeviceChanges(ctx context.Context, name string, fn func(uid string)) error {
	c := make(chan string, QueueDepth)
	if err := subscribe(&b.mu, b.devices, name, c); err != nil {
		return err
	}
	defer unsubscribe(&b.mu, b.devices, name)
	return consume(ctx, c, fn)
}

func subscribe[T any](mu *sync.RWMutex, m map[string]chan T, name string, c chan T) error {
	mu.Lock()
	defer mu.Unlock()
	if _, ok := m[name]; ok {
		return fmt.Errorf("bus: subscriber %q already registered", name)
	}
	m[name] = c
	return nil
}

func unsubscribe[T any](mu *sync.RWMutex, m map[string]chan T, name string) {
	mu.Lock()
	delete(m, name)
	mu.Unlock()
}

func consume[T any](ctx context.Context, c chan T, fn func(T)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-c:
			fn(m)
		}
	}
}
