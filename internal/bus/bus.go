// Package bus carries messages between nodes: batches of submissions from
// hubs to the master, blocks from the master to hubs, and hubs' validations
// to every node. This package holds the message types and the in-process
// implementation used by `cissan up`; a RabbitMQ implementation meets the
// same contract across machines.
//
// Delivery is at least once everywhere. A handler's nil return is the
// acknowledgement: the receiver has made the message durable. Receivers
// must tolerate repeats and, for blocks, gaps (they fetch what they missed).
package bus

import (
	"context"

	"cissan/internal/chain"
)

// Batch is a hub's signed batch of submissions: entry encodings without
// tags. Signature covers chain.BatchMessage(network, HubID, Seq, Entries).
type Batch struct {
	HubID     string
	Seq       uint64
	Entries   [][]byte
	Signature []byte
}

// Refusal is the master's answer for a submission it will never log, with
// the reason. Everything not refused was accepted durably.
type Refusal struct {
	UID    string
	Reason string
}

// BatchHandler is the master's side of batch delivery.
type BatchHandler func(ctx context.Context, b *Batch) ([]Refusal, error)

// BlockHandler receives blocks on a hub.
type BlockHandler func(ctx context.Context, b *chain.Block) error

// ValidationHandler receives validations.
type ValidationHandler func(ctx context.Context, v *chain.Validation) error

// BlockFetcher serves blocks from a height on, for nodes catching up.
type BlockFetcher func(ctx context.Context, from uint64, max int) ([]*chain.Block, error)
