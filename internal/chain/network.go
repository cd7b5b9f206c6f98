package chain

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
)

// Network is what a verifier must know to check anything the network
// signed: its id, the master's key, the hubs' keys and the quorum. It is
// published as network.json.
type Network struct {
	ID        NetworkID
	MasterKey ed25519.PublicKey
	Hubs      []HubInfo
	Quorum    int // accepting hubs needed for finality
}

// HubInfo is a hub allowed to validate blocks from height FromHeight on.
type HubInfo struct {
	ID         string
	PublicKey  ed25519.PublicKey
	FromHeight uint64
}

// Hub returns the hub with the given id, or nil.
func (n *Network) Hub(id string) *HubInfo {
	for i := range n.Hubs {
		if n.Hubs[i].ID == id {
			return &n.Hubs[i]
		}
	}
	return nil
}

type networkJSON struct {
	Version   int       `json:"version"`
	NetworkID string    `json:"network_id"`
	MasterKey string    `json:"master_public_key"`
	Quorum    int       `json:"quorum"`
	Hubs      []hubJSON `json:"hubs"`
}

type hubJSON struct {
	ID         string `json:"id"`
	PublicKey  string `json:"public_key"`
	FromHeight uint64 `json:"from_height"`
}

// MarshalJSON writes network.json's format (SPEC.md, "network.json").
func (n Network) MarshalJSON() ([]byte, error) {
	j := networkJSON{Version: 1, NetworkID: n.ID.String(), MasterKey: hex.EncodeToString(n.MasterKey), Quorum: n.Quorum}
	for _, h := range n.Hubs {
		j.Hubs = append(j.Hubs, hubJSON{ID: h.ID, PublicKey: hex.EncodeToString(h.PublicKey), FromHeight: h.FromHeight})
	}
	return json.MarshalIndent(j, "", "  ")
}

// UnmarshalJSON parses and checks network.json.
func (n *Network) UnmarshalJSON(b []byte) error {
	var j networkJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("network.json: %w", err)
	}
	if j.Version != 1 {
		return fmt.Errorf("network.json: version %d, want 1", j.Version)
	}
	id, err := ParseNetworkID(j.NetworkID)
	if err != nil {
		return fmt.Errorf("network.json: %w", err)
	}
	mk, err := parseKey(j.MasterKey)
	if err != nil {
		return fmt.Errorf("network.json: master_public_key: %w", err)
	}
	out := Network{ID: id, MasterKey: mk, Quorum: j.Quorum}
	for i, h := range j.Hubs {
		k, err := parseKey(h.PublicKey)
		if err != nil {
			return fmt.Errorf("network.json: hubs[%d].public_key: %w", i, err)
		}
		if h.ID == "" || out.Hub(h.ID) != nil {
			return fmt.Errorf("network.json: hubs[%d].id %q is empty or repeated", i, h.ID)
		}
		for _, o := range out.Hubs {
			if o.PublicKey.Equal(k) {
				// One key under two ids would count twice towards the quorum.
				return fmt.Errorf("network.json: hubs[%d] (%s) has the same public key as %s", i, h.ID, o.ID)
			}
		}
		out.Hubs = append(out.Hubs, HubInfo{ID: h.ID, PublicKey: k, FromHeight: h.FromHeight})
	}
	if out.Quorum < 1 || out.Quorum > len(out.Hubs) {
		return fmt.Errorf("network.json: quorum %d must be between 1 and the number of hubs (%d)", out.Quorum, len(out.Hubs))
	}
	*n = out
	return nil
}

func parseKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("want %d hex-encoded bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// LoadNetwork reads a network.json file.
func LoadNetwork(path string) (*Network, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var n Network
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &n, nil
}
