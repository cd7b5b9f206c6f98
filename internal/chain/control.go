package chain

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
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
	// ControlEnrolHub adds a hub to the network: its body is the JSON
	// object {"id": "...", "public_key": "<64 hex>"}. The hub may submit
	// entries and validate blocks from the next block on.
	ControlEnrolHub = 2
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
	if b[1] != ControlAnalyzers && b[1] != ControlEnrolHub {
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

// Enrolment is the body of a ControlEnrolHub record.
type Enrolment struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"`
}

// Encode returns the record that enrols the hub.
func (e Enrolment) Encode() []byte {
	body, _ := json.Marshal(e) // two strings always marshal
	return Control{Kind: ControlEnrolHub, Body: body}.Encode()
}

// ParseEnrolment reads and checks an enrolment body.
func ParseEnrolment(body []byte) (Enrolment, ed25519.PublicKey, error) {
	var e Enrolment
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, nil, fmt.Errorf("hub enrolment: %w", err)
	}
	if err := CheckHubID(e.ID); err != nil {
		return e, nil, err
	}
	key, err := parseKey(e.PublicKey)
	if err != nil {
		return e, nil, fmt.Errorf("hub enrolment %s: public_key: %w", e.ID, err)
	}
	return e, key, nil
}

// CheckHubID checks a hub id: the identifier characters of event uids,
// and not a name the bus reserves for other nodes.
func CheckHubID(id string) error {
	if err := event.CheckDeviceUID(id); err != nil {
		return fmt.Errorf("hub id %q: %w", id, err)
	}
	if id == "master" || id == "registry" {
		return fmt.Errorf("hub id %q is reserved", id)
	}
	return nil
}

// Enrol returns a copy of n with the hub added from height from on. A hub
// already in n with the same key is no change; with another key, an error.
func (n *Network) Enrol(id string, key ed25519.PublicKey, from uint64) (*Network, error) {
	if h := n.Hub(id); h != nil {
		if !h.PublicKey.Equal(key) {
			return nil, fmt.Errorf("hub %s is already enrolled with another key", id)
		}
		return n, nil
	}
	if n.MasterKey.Equal(key) {
		return nil, fmt.Errorf("hub %s: the master's key cannot be a hub's", id)
	}
	for _, h := range n.Hubs {
		if h.PublicKey.Equal(key) {
			return nil, fmt.Errorf("hub %s: key already enrolled for %s", id, h.ID)
		}
	}
	c := *n
	c.Hubs = append(append([]HubInfo(nil), n.Hubs...), HubInfo{ID: id, PublicKey: key, FromHeight: from})
	return &c, nil
}
