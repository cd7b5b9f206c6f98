package bitcoin

import (
	"fmt"

	"github.com/btcsuite/btcd/chaincfg"
)

// Networks lists the names Params accepts.
var Networks = []string{"mainnet", "testnet", "signet", "regtest"}

// Params returns the parameters of the named network.
func Params(name string) (*chaincfg.Params, error) {
	switch name {
	case "mainnet":
		return &chaincfg.MainNetParams, nil
	case "testnet":
		return &chaincfg.TestNet3Params, nil
	case "signet":
		return &chaincfg.SigNetParams, nil
	case "regtest":
		return &chaincfg.RegressionNetParams, nil
	}
	return nil, fmt.Errorf("bitcoin network %q: want one of mainnet, testnet, signet, regtest", name)
}
