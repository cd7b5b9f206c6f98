package proof_test

import (
	"encoding/json"
	"fmt"

	"cissan/internal/chain"
	"cissan/internal/proof"
)

// Example builds the bundle for the first entry of the test vectors' first
// block, sends it through JSON as `cissan proof` would, and verifies it
// with nothing but the network's public description.
func Example() {
	blocks, net, hub, err := vectorChain()
	if err != nil {
		panic(err)
	}
	val := vecValidation(blocks[0], hub)

	b, err := proof.Build(net.ID, blocks[0], 0, []chain.Validation{val}, nil)
	if err != nil {
		panic(err)
	}
	data, _ := json.Marshal(b)

	received, err := proof.Parse(data)
	if err != nil {
		panic(err)
	}
	r, err := proof.Verify(received, net)
	if err != nil {
		fmt.Println("invalid:", err)
		return
	}
	fmt.Printf("event %s logged at height %d, index %d of %d\n", r.Event().UID, r.Height, r.LeafIndex, r.EntryCount)
	fmt.Printf("block %x, final: %v, accepted by %v\n", r.BlockHash[:8], r.Final, r.Accepted)

	received.Validations = nil
	_, err = proof.Verify(received, net)
	fmt.Println(err)
	// Output:
	// event evt-0001 logged at height 0, index 0 of 5
	// block 53c7912932e79cee, final: true, accepted by [hub-1]
	// quorum: not final: 0 of 0 accepting validations, quorum 1
}
