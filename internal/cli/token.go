package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"cissan/internal/registry"
)

const tokenUsage = `usage: cissan token <command> [flags]

commands:
  create  --namespace NS[,NS...] --label LABEL   issue a read token for these namespaces; prints it, shown only once
  list                                           list read tokens (never their secrets)
  revoke  --id ID (or ID as an argument)         stop a read token from working, for good

A read token reads the events, proofs and search results of its namespaces
through the HTTP API and the explorer, and nothing else: no devices, no
other namespaces, no changes. The operator token is read from CISSAN_TOKEN
if set, else from --token-file.
`

// runToken manages read tokens through the registry's HTTP API.
func runToken(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, tokenUsage)
		return usagef("token: missing command (create, list, revoke)")
	}
	sub := args[0]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(env.Stdout, tokenUsage)
		return nil
	}
	if sub != "create" && sub != "list" && sub != "revoke" {
		fmt.Fprint(env.Stderr, tokenUsage)
		return usagef("token: unknown command %q", sub)
	}
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8080", "base URL of the registry API")
	cacert := fs.String("cacert", "", cacertUsage)
	tokenFile := fs.String("token-file", "./data/admin.token", "file holding the operator token (CISSAN_TOKEN overrides it)")
	namespaces := fs.String("namespace", "", "create: the namespaces the token reads, org/group, comma-separated")
	label := fs.String("label", "", "create: who or what the token is for, e.g. auditor")
	id := fs.String("id", "", "revoke: the token's id (from token list)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tokenUsage+"\nflags:\n")
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
	if len(pos) > 0 {
		return usagef("token %s: unexpected arguments %q", sub, pos)
	}
	switch {
	case sub == "create" && (*namespaces == "" || *label == ""):
		return usagef("token create: --namespace and --label are required")
	case sub == "revoke" && *id == "":
		return usagef("token revoke: --id is required")
	case sub != "create" && (*namespaces != "" || *label != ""):
		return usagef("token %s: --namespace and --label are for create", sub)
	case sub != "revoke" && *id != "":
		return usagef("token %s: --id is for revoke", sub)
	}
	if u, err := url.Parse(*api); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("token %s: --api must be an http:// or https:// URL, not %q", sub, *api)
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
	case "create":
		var ns []string
		for _, n := range strings.Split(*namespaces, ",") {
			if n = strings.TrimSpace(n); n != "" {
				ns = append(ns, n)
			}
		}
		out, err = c.CreateReadToken(ctx, *label, ns)
		if err == nil {
			fmt.Fprintln(env.Stderr, "Store the token now: the registry keeps only its hash and cannot show it again.")
		}
	case "list":
		var ts []registry.ReadToken
		ts, err = c.ReadTokens(ctx)
		out = struct {
			Tokens []registry.ReadToken `json:"tokens"`
		}{ts}
	case "revoke":
		out, err = c.RevokeReadToken(ctx, *id)
	}
	if err != nil {
		return fmt.Errorf("token %s: %w", sub, err)
	}
	return printJSON(env.Stdout, out)
}
