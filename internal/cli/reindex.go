package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/ledger"
	"path/filepath"
)

func runReindex(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "data directory of `cissan up`")
	node := fs.String("node", "", "node directory to reindex (master, hub-1, ...); default every node")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	net, err := chain.LoadNetwork(filepath.Join(*dataDir, "network.json"))
	if err != nil {
		return err
	}
	nodes := nodeDirs(net, *node)
	for _, name := range nodes {
		dir := filepath.Join(*dataDir, name)
		l, err := ledger.Open(ctx, ledger.Config{Dir: dir, Network: net, Limits: event.DefaultLimits(), Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := l.Index().Reset(ctx); err != nil {
			l.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := l.SyncIndex(ctx); err != nil {
			l.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		c, _ := l.Index().Count(ctx)
		fmt.Fprintf(env.Stdout, "%s: reindexed %d blocks, %d events\n", name, l.Height(), c)
		if err := l.Close(); err != nil {
			return err
		}
	}
	return nil
}

// nodeDirs names the node directories of a `cissan up` data dir: only
// the one given, or the master and every hub.
func nodeDirs(net *chain.Network, only string) []string {
	if only != "" {
		return []string{only}
	}
	out := []string{"master"}
	for _, h := range net.Hubs {
		out = append(out, h.ID)
	}
	return out
}
