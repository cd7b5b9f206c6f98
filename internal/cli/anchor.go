package cli

import (
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"cissan/internal/anchor"
	"cissan/internal/bitcoin"
)

// anchorFlags are the Bitcoin anchoring flags of `cissan up` and
// `cissan master`.
type anchorFlags struct {
	rpc, rpcAuth, network, key string
	interval, bumpAfter, poll  time.Duration
	confirmations, rescanFrom  int64
	feeRate, maxFeeRate        float64
}

func addAnchorFlags(fs *flag.FlagSet) *anchorFlags {
	f := &anchorFlags{}
	fs.StringVar(&f.rpc, "bitcoin-rpc", "", "Bitcoin node JSON-RPC URL, http://user:password@host:port; anchoring is off without it")
	fs.StringVar(&f.rpcAuth, "bitcoin-rpc-auth", "", "file holding the RPC user:password (Bitcoin Core's .cookie), instead of credentials in the URL")
	fs.StringVar(&f.network, "bitcoin-network", "regtest", "Bitcoin network: "+strings.Join(bitcoin.Networks, ", "))
	fs.StringVar(&f.key, "anchor-key", "", "anchor wallet's WIF private key file, created (mode 0600) when absent (default DATA_DIR/anchor.key)")
	fs.DurationVar(&f.interval, "anchor-interval", 10*time.Minute, "time between anchors")
	fs.Int64Var(&f.confirmations, "anchor-confirmations", 6, "Bitcoin confirmations for an anchor to count as confirmed")
	fs.Float64Var(&f.feeRate, "anchor-fee-rate", 2, "fee rate in sat/vB when the node has no estimate")
	fs.Float64Var(&f.maxFeeRate, "anchor-max-fee-rate", 100, "highest fee rate in sat/vB taken from the node's estimate")
	fs.DurationVar(&f.bumpAfter, "anchor-bump-after", time.Hour, "replace an anchor transaction by fee when unconfirmed this long")
	fs.DurationVar(&f.poll, "anchor-poll", 10*time.Second, "how often the Bitcoin node is asked for new blocks")
	fs.Int64Var(&f.rescanFrom, "anchor-rescan-from", -1, "first Bitcoin height scanned for funds of a given key (-1: 0 on regtest, else two weeks back)")
	return f
}

// config returns the anchoring configuration, or nil when --bitcoin-rpc
// is not set. keyDir is where the key goes by default.
func (f *anchorFlags) config(keyDir string) (*anchor.Config, error) {
	if f.rpc == "" {
		return nil, nil
	}
	if !slices.Contains(bitcoin.Networks, f.network) {
		return nil, usagef("--bitcoin-network must be one of %s", strings.Join(bitcoin.Networks, ", "))
	}
	if f.interval < time.Second {
		return nil, usagef("--anchor-interval must be at least 1s")
	}
	if f.confirmations < 1 {
		return nil, usagef("--anchor-confirmations must be at least 1")
	}
	if f.feeRate <= 0 || f.maxFeeRate < f.feeRate {
		return nil, usagef("--anchor-fee-rate must be positive and at most --anchor-max-fee-rate")
	}
	rpc, err := bitcoin.Dial(f.rpc, f.rpcAuth)
	if err != nil {
		return nil, usagef("--bitcoin-rpc: %v", err)
	}
	key := f.key
	if key == "" {
		key = filepath.Join(keyDir, "anchor.key")
	}
	return &anchor.Config{
		RPC: rpc, Network: f.network, KeyFile: key, Interval: f.interval, Confirmations: f.confirmations,
		FeeRate: f.feeRate, MaxFeeRate: f.maxFeeRate, BumpAfter: f.bumpAfter, Poll: f.poll, RescanFrom: f.rescanFrom,
	}, nil
}

// describe is the line `up` and `master` print about anchoring.
func describeAnchor(s *anchor.Service) string {
	if s == nil {
		return "off (--bitcoin-rpc)"
	}
	st := s.Status()
	return fmt.Sprintf("%s, wallet %s (fund it; GET /v1/status shows its balance)", st.Network, st.Address)
}
