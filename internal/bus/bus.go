// Package bus carries messages between nodes: batches of submissions from
// hubs to the master, blocks from the master to hubs, and hubs' validations
// to every node. It holds the message types, their wire encoding (wire.go),
// and two implementations with the same methods and meaning, checked by
// one contract test: InProc, used by `cissan up`, and AMQP, over RabbitMQ,
// for nodes in separate processes.
//
// Delivery is at least once everywhere. A handler's nil return is the
// acknowledgement: the receiver has made the message durable. Receivers
// must tolerate repeats and, for blocks, gaps (they fetch what they missed).
//
// AMQP's topology, for the default prefix "cissan" (docs/rabbitmq.md has
// the whole of it): hubs send batches and fetches as RPC through the direct
// exchange cissan.master (keys "batch", "fetch") to the master's quorum
// queues cissan.master.batches and cissan.master.fetch, with replies to
// each caller's durable queue cissan.reply.<node>; blocks fan out through
// cissan.blocks to one quorum queue per hub, cissan.blocks.<hub>;
// validations fan out through cissan.validations to one quorum queue per
// node, cissan.validations.<node>. Messages are persistent where they must
// be, published with confirms, and acknowledged only after the handler
// returned.
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
