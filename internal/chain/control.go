package chain

import (
	"encoding/binary"
	"errors"
	"fmt"

	"cissan/internal/event"
)

// Control record kinds.
const (
	// ControlAnalyzers sets the analyzer configuration: its body is the
	// JSON document analyze.ParseConfig reads. It decides the tags of the
	// block that carries it and of the blocks after.
	ControlAnalyzers = 1
)

// ControlVersion is the first byte of every control record.
const ControlVersion = 1

// Control is a record that changes how the network works from the block
// that carries it on, recorded in the chain so that every node and every later
// verifier knows what applied at which height. A block's control_root is
// the RFC 6962 root over its control records' leaves, computed as for
// entries; a block without control records has an all-zero control_root.
//
// Encoding: u8 version (1) || u8 kind || u32 body length || body.
type Control struct {
	Kind uint8
	Body []byte
}

// Encode returns the record's bytes.
func (c Control) Encode() []byte {
	b := []byte{ControlVersion, c.Kind}
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Body)))
	return append(b, c.Body...)
}

// ErrControl is returned for bytes that are not a well-formed control record.
var ErrControl = errors.New("malformed control record")

// DecodeControl parses a control record of a known kind.
func DecodeControl(b []byte) (Control, error) {
	if len(b) < 6 {
		return Control{}, fmt.Errorf("%w: %d bytes", ErrControl, len(b))
	}
	if b[0] != ControlVersion {
		return Control{}, fmt.Errorf("%w: version %d", ErrControl, b[0])
	}
	if b[1] != ControlAnalyzers {
		return Control{}, fmt.Errorf("%w: unknown kind %d", ErrControl, b[1])
	}
	if n := binary.BigEndian.Uint32(b[2:]); uint64(n) != uint64(len(b)-6) {
		return Control{}, fmt.Errorf("%w: body length %d, %d bytes follow", ErrControl, n, len(b)-6)
	}
	return Control{Kind: b[1], Body: b[6:]}, nil
}

// ControlRoot returns the control_root for a block's control records:
// all zero when there are none.
func ControlRoot(records [][]byte) Hash {
	if len(records) == 0 {
		return Hash{}
	}
	leaves := make([]Hash, len(records))
	for i, r := range records {
		leaves[i] = event.LeafHash(r)
	}
	return Root(leaves)
}
