package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/fsck"
	"cissan/internal/index"
	"cissan/internal/ledger"
	"cissan/internal/store"
)

// runVerifyData re-checks every node of a data dir and compares their
// chains. It exits non-zero if anything is wrong, after naming each thing.
func runVerifyData(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("verify data", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "data directory of `cissan up`")
	node := fs.String("node", "", "check only this node (master, hub-1, ...)")
	network := fs.String("network", "", "network.json to trust (default DATA_DIR/network.json)")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *network == "" {
		*network = filepath.Join(*dataDir, "network.json")
	}
	net, err := chain.LoadNetwork(*network)
	if err != nil {
		return err
	}
	var reports []*fsck.Report
	var problems []fsck.Problem
	for _, name := range nodeDirs(net, *node) {
		r, err := checkNode(ctx, filepath.Join(*dataDir, name), name, net)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(env.Stdout, "%s: %d blocks, %d entries checked\n", name, r.Blocks, r.Entries)
		// The master collects every hub's validation; a hub may hold only
		// its own, so only the master's shortfall says something.
		if name == "master" && len(r.NotFinal) > 0 {
			fmt.Fprintf(env.Stdout, "NOTE %s: %d blocks without a quorum of valid accepting validations stored here: %s\n", name, len(r.NotFinal), heights(r.NotFinal))
		}
		reports = append(reports, r)
		problems = append(problems, r.Problems...)
	}
	problems = append(problems, fsck.Compare(reports)...)
	for _, p := range problems {
		fmt.Fprintln(env.Stdout, "PROBLEM", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("verify data: %d problems found", len(problems))
	}
	fmt.Fprintln(env.Stdout, "OK: every block, signature, link, root, entry, validation and index row checks out")
	return nil
}

func checkNode(ctx context.Context, dir, name string, net *chain.Network) (*fsck.Report, error) {
	st, err := store.Open(ledger.StorePath(dir), store.Options{ReadOnly: true})
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) {
			return nil, fmt.Errorf("%w: the node is running; stop cissan up first", err)
		}
		return nil, err
	}
	defer st.Close()
	idx, err := index.Open(ledger.IndexPath(dir))
	if err != nil {
		return nil, err
	}
	defer idx.Close()
	return fsck.Check(ctx, name, st, idx, net, event.DefaultLimits())
}

// heights lists block heights, eliding the middle of a long list.
func heights(hs []uint64) string {
	parts := make([]string, 0, 7)
	for i, h := range hs {
		if len(hs) > 6 && i == 3 {
			parts = append(parts, "...")
		}
		if len(hs) <= 6 || i < 3 || i >= len(hs)-3 {
			parts = append(parts, strconv.FormatUint(h, 10))
		}
	}
	return strings.Join(parts, " ")
}
