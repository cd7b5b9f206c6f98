package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"

	"cissan/internal/registry"
)

const nodesUsage = `usage: cissan nodes <command> [flags]

commands:
  list                                  list the nodes the registry knows (from its --network file) and which are revoked
  revoke  --id ID (or ID as an argument)  refuse every request the node signs from now on, for good

Hubs and the master call the registry as themselves, signing each request
with the key network.json lists for them; they may only log devices in and
check read tokens. Revoke a node whose machine or key may be in someone
else's hands; replace a revoked hub by enrolling a new one. The operator
token is read from CISSAN_TOKEN if set, else from --token-file.
`

// runNodes lists and revokes nodes through the registry's HTTP API.
func runNodes(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, nodesUsage)
		return usagef("nodes: missing command (list, revoke)")
	}
	sub := args[0]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(env.Stdout, nodesUsage)
		return nil
	}
	if sub != "list" && sub != "revoke" {
		fmt.Fprint(env.Stderr, nodesUsage)
		return usagef("nodes: unknown command %q", sub)
	}
	fs := flag.NewFlagSet("nodes "+sub, flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8081", "base URL of the registry API")
	cacert := fs.String("cacert", "", cacertUsage)
	tokenFile := fs.String("token-file", "./data/registry/admin.token", "file holding the registry's operator token (CISSAN_TOKEN overrides it)")
	id := fs.String("id", "", "revoke: the node's id (hub-3, or master)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), nodesUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, env, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if sub == "revoke" && len(pos) == 1 && *id == "" {
		*id, pos = pos[0], nil
	}
	switch {
	case len(pos) > 0:
		return usagef("nodes %s: unexpected arguments %q", sub, pos)
	case sub == "revoke" && *id == "":
		return usagef("nodes revoke: --id is required")
	case sub != "revoke" && *id != "":
		return usagef("nodes %s: --id is for revoke", sub)
	}
	if u, err := url.Parse(*api); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("nodes %s: --api must be an http:// or https:// URL, not %q", sub, *api)
	}
	op, err := operatorToken(*tokenFile)
	if err != nil {
		return err
	}
	hc, err := apiClient(*cacert)
	if err != nil {
		return err
	}
	c := &registry.Client{BaseURL: *api, Token: op, HTTP: hc}
	var out any
	switch sub {
	case "list":
		var ns []registry.Node
		ns, err = c.Nodes(ctx)
		out = struct {
			Nodes []registry.Node `json:"nodes"`
		}{ns}
	case "revoke":
		out, err = c.RevokeNode(ctx, *id)
	}
	if err != nil {
		return fmt.Errorf("nodes %s: %w", sub, err)
	}
	return printJSON(env.Stdout, out)
}
