package anchor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
)

// Key is the anchoring wallet's one key and the P2WPKH address it pays to
// and spends from.
type Key struct {
	priv    *btcec.PrivateKey
	Address btcutil.Address
	Script  []byte // the address's output script
}

// LoadKey reads a WIF private key from path. When path does not exist it
// creates a new key there, readable by its owner only, and reports so.
// A key file others can read is refused: it holds money.
func LoadKey(path string, params *chaincfg.Params) (k *Key, created bool, err error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		priv, err := btcec.NewPrivateKey()
		if err != nil {
			return nil, false, fmt.Errorf("anchor key: %w", err)
		}
		wif, err := btcutil.NewWIF(priv, params, true)
		if err != nil {
			return nil, false, fmt.Errorf("anchor key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("anchor key: %w", err)
		}
		if _, err := f.WriteString(wif.String() + "\n"); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("anchor key %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("anchor key %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, false, fmt.Errorf("anchor key %s: %w", path, err)
		}
		k, err := newKey(priv, params)
		return k, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("anchor key: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, false, fmt.Errorf("anchor key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("anchor key %s: mode %04o lets others read it; run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	wif, err := btcutil.DecodeWIF(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, false, fmt.Errorf("anchor key %s: not a WIF private key: %w", path, err)
	}
	if !wif.IsForNet(params) {
		return nil, false, fmt.Errorf("anchor key %s: the key is not for the %s network", path, params.Name)
	}
	if !wif.CompressPubKey {
		return nil, false, fmt.Errorf("anchor key %s: an uncompressed key cannot have a segwit address", path)
	}
	k, err = newKey(wif.PrivKey, params)
	return k, false, err
}

func newKey(priv *btcec.PrivateKey, params *chaincfg.Params) (*Key, error) {
	hash := btcutil.Hash160(priv.PubKey().SerializeCompressed())
	addr, err := btcutil.NewAddressWitnessPubKeyHash(hash, params)
	if err != nil {
		return nil, fmt.Errorf("anchor key: %w", err)
	}
	script, err := txscript.PayToAddrScript(addr)
	if err != nil {
		return nil, fmt.Errorf("anchor key: %w", err)
	}
	return &Key{priv: priv, Address: addr, Script: script}, nil
}
