// Package identity keeps a node's Ed25519 key and the network's
// network.json: created on first start, checked on every later one, since
// every signature in the chain is bound to them.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cissan/internal/chain"
)

// LoadOrCreateKey reads an Ed25519 key (its 32-byte seed in hex) from path,
// creating one readable by its owner only if the file does not exist.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(hex.EncodeToString(seed)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write key: %w", err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key %s: want %d hex-encoded bytes", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// LoadOrCreateNetwork returns the network described by the network.json
// at path, creating it with a new network id for the given master key and
// hubs on first start (quorum: every hub). A network.json that names other
// keys or other hubs is an error: the chain's signatures are bound to it.
func LoadOrCreateNetwork(path string, master ed25519.PublicKey, hubs []chain.HubInfo) (*chain.Network, error) {
	want := &chain.Network{MasterKey: master, Hubs: hubs, Quorum: len(hubs)}
	have, err := chain.LoadNetwork(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := rand.Read(want.ID[:]); err != nil {
			return nil, err
		}
		b, err := want.MarshalJSON()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("write network.json: %w", err)
		}
		return want, nil
	}
	if err != nil {
		return nil, err
	}
	if !have.MasterKey.Equal(want.MasterKey) {
		return nil, fmt.Errorf("%s names another master key", path)
	}
	if len(have.Hubs) != len(want.Hubs) {
		return nil, fmt.Errorf("%s has %d hubs but %d are configured: configure the same hubs, or start a new network in a new data dir", path, len(have.Hubs), len(want.Hubs))
	}
	for i := range want.Hubs {
		if have.Hubs[i].ID != want.Hubs[i].ID || !have.Hubs[i].PublicKey.Equal(want.Hubs[i].PublicKey) {
			return nil, fmt.Errorf("%s: hub %q differs from the configured hub %q and its key", path, have.Hubs[i].ID, want.Hubs[i].ID)
		}
	}
	return have, nil
}
