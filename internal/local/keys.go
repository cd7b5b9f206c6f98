package local

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

// loadOrCreateKey reads an Ed25519 key (its 32-byte seed in hex) from path,
// creating one readable by its owner only if the file does not exist.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
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

// loadOrCreateNetwork returns the network described by network.json in
// dir, creating it for the given keys on first start. A network.json that
// names other keys or another number of hubs is an error: the chain's
// signatures are bound to it.
func loadOrCreateNetwork(dir string, master ed25519.PrivateKey, hubIDs []string, hubKeys []ed25519.PrivateKey) (*chain.Network, error) {
	path := filepath.Join(dir, "network.json")
	want := &chain.Network{MasterKey: master.Public().(ed25519.PublicKey), Quorum: len(hubIDs)}
	for i, id := range hubIDs {
		want.Hubs = append(want.Hubs, chain.HubInfo{ID: id, PublicKey: hubKeys[i].Public().(ed25519.PublicKey)})
	}
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
		return nil, fmt.Errorf("%s: master key differs from %s", path, filepath.Join(dir, "master", "master.key"))
	}
	if len(have.Hubs) != len(want.Hubs) {
		return nil, fmt.Errorf("%s has %d hubs but --hubs is %d: use --hubs %d with this data dir, or a new --data-dir", path, len(have.Hubs), len(want.Hubs), len(have.Hubs))
	}
	for i := range want.Hubs {
		if have.Hubs[i].ID != want.Hubs[i].ID || !have.Hubs[i].PublicKey.Equal(want.Hubs[i].PublicKey) {
			return nil, fmt.Errorf("%s: hub %q differs from the keys in the data dir", path, have.Hubs[i].ID)
		}
	}
	return have, nil
}
