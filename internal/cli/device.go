package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"cissan/internal/registry"
)

const deviceUsage = `usage: cissan device <command> [flags]

commands:
  add         --namespace NS --uid UID [--require-cert]   register a device; prints its token, shown only once
              (--require-cert: it must log in with a client certificate naming it)
  list        [--namespace NS] [--status active|inactive|revoked]
  show        --uid UID (or UID as an argument)
  deactivate  --uid UID   stop a device from connecting until reactivated
  reactivate  --uid UID
  revoke      --uid UID   bar a device for good; its uid cannot be reused
  rotate      --uid UID   issue a new token; the old one stops working at once
  limits      --uid UID | --namespace NS  [--max-rate N] [--max-bytes-rate N]
              what a device (or each device of a namespace) may send to a hub, events and
              payload bytes per second; 0 or absent: the namespace's, else the hubs' defaults
              (2,000 events/s, 2 MiB/s). Its connections are dropped, to log in under them.

The operator token is read from CISSAN_TOKEN if set, else from --token-file.
`

// deviceFlags says which optional flags each device command takes, so that a
// flag given to the wrong command is refused rather than silently ignored.
var deviceFlags = map[string][]string{
	"add":        {"namespace", "uid", "require-cert"},
	"list":       {"namespace", "status"},
	"show":       {"uid"},
	"deactivate": {"uid"},
	"reactivate": {"uid"},
	"revoke":     {"uid"},
	"rotate":     {"uid"},
	"limits":     {"uid", "namespace", "max-rate", "max-bytes-rate"},
}

// runDevice is the registry operator's command: it drives the registry's
// HTTP API (registry.Client) and prints the server's JSON.
func runDevice(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, deviceUsage)
		return usagef("device: missing command (add, list, show, deactivate, reactivate, revoke, rotate, limits)")
	}
	sub := args[0]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(env.Stdout, deviceUsage)
		return nil
	}
	allowed, ok := deviceFlags[sub]
	if !ok {
		fmt.Fprint(env.Stderr, deviceUsage)
		return usagef("device: unknown command %q", sub)
	}

	fs := flag.NewFlagSet("device "+sub, flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8080", "base URL of the registry API")
	cacert := fs.String("cacert", "", cacertUsage)
	tokenFile := fs.String("token-file", "./data/admin.token", "file holding the operator token (CISSAN_TOKEN overrides it)")
	namespace := fs.String("namespace", "", "device namespace, org/group")
	uid := fs.String("uid", "", "device uid")
	requireCert := fs.Bool("require-cert", false, "add: the device must log in with a client certificate naming it (hubs with --tls-client-ca)")
	status := fs.String("status", "", "list only devices with this status: active, inactive or revoked")
	maxRate := fs.Float64("max-rate", 0, "limits: events per second")
	maxBytes := fs.Float64("max-bytes-rate", 0, "limits: payload bytes per second")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), deviceUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, env, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}

	var misplaced []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "api" || f.Name == "token-file" || f.Name == "cacert" {
			return
		}
		for _, a := range allowed {
			if f.Name == a {
				return
			}
		}
		misplaced = append(misplaced, "--"+f.Name)
	})
	if len(misplaced) > 0 {
		return usagef("device %s: does not take %s", sub, strings.Join(misplaced, ", "))
	}
	// The uid of a single-device command may come as an argument.
	if sub != "add" && sub != "list" && len(pos) == 1 {
		if *uid != "" && *uid != pos[0] {
			return usagef("device %s: uid given twice (--uid %q and %q)", sub, *uid, pos[0])
		}
		*uid, pos = pos[0], nil
	}
	if len(pos) > 0 {
		return usagef("device %s: unexpected arguments %q", sub, pos)
	}
	switch {
	case sub == "add" && (*namespace == "" || *uid == ""):
		return usagef("device add: --namespace and --uid are required")
	case sub == "limits" && (*uid == "") == (*namespace == ""):
		return usagef("device limits: give --uid or --namespace")
	case sub != "add" && sub != "list" && sub != "limits" && *uid == "":
		return usagef("device %s: --uid is required", sub)
	case *status != "" && !registry.Status(*status).Valid():
		return usagef("device list: --status must be active, inactive or revoked, not %q", *status)
	}
	if u, err := url.Parse(*api); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("device %s: --api must be an http:// or https:// URL, not %q", sub, *api)
	}
	token, err := operatorToken(*tokenFile)
	if err != nil {
		return err
	}

	hc, err := apiClient(*cacert)
	if err != nil {
		return err
	}
	c := &registry.Client{BaseURL: *api, Token: token, HTTP: hc}
	var out any
	switch sub {
	case "add":
		add := c.Add
		if *requireCert {
			add = c.AddRequiringCert
		}
		d, tok, err := add(ctx, *namespace, *uid)
		if err != nil {
			return fmt.Errorf("device add: %w", err)
		}
		out = registry.DeviceToken{Device: d, Token: tok}
		fmt.Fprintln(env.Stderr, "Store the token now: the registry keeps only its hash and cannot show it again.")
	case "list":
		devs, err := listAll(ctx, c, registry.ListFilter{Namespace: *namespace, Status: registry.Status(*status)})
		if err != nil {
			return fmt.Errorf("device list: %w", err)
		}
		out = struct {
			Devices []registry.Device `json:"devices"`
		}{devs}
	case "show":
		out, err = c.Get(ctx, *uid)
	case "limits":
		req := registry.LimitsRequest{DeviceUID: *uid, Namespace: *namespace, Limits: registry.Limits{Rate: *maxRate, Bytes: *maxBytes}}
		out, err = req, c.SetLimits(ctx, req)
	case "deactivate":
		out, err = c.Deactivate(ctx, *uid)
	case "reactivate":
		out, err = c.Reactivate(ctx, *uid)
	case "revoke":
		out, err = c.Revoke(ctx, *uid)
	case "rotate":
		d, tok, rerr := c.Rotate(ctx, *uid)
		out, err = registry.DeviceToken{Device: d, Token: tok}, rerr
		if err == nil {
			fmt.Fprintln(env.Stderr, "Store the new token now: the old one no longer works, and this one cannot be shown again.")
		}
	}
	if err != nil {
		return fmt.Errorf("device %s: %w", sub, err)
	}
	return printJSON(env.Stdout, out)
}

// listAll follows the API's pages until the last.
func listAll(ctx context.Context, c *registry.Client, f registry.ListFilter) ([]registry.Device, error) {
	f.Limit = registry.MaxListLimit
	all := []registry.Device{}
	for {
		devs, next, err := c.List(ctx, f)
		if err != nil {
			return nil, err
		}
		all = append(all, devs...)
		if next == "" {
			return all, nil
		}
		if next <= f.After {
			return nil, fmt.Errorf("server returned a cursor %q that does not advance past %q", next, f.After)
		}
		f.After = next
	}
}

// operatorToken returns CISSAN_TOKEN if set, else the content of path.
func operatorToken(path string) (string, error) { return tokenFrom("CISSAN_TOKEN", path) }

// tokenFrom returns the environment variable env if set, else the content
// of path.
func tokenFrom(env, path string) (string, error) {
	if tok := strings.TrimSpace(os.Getenv(env)); tok != "" {
		return tok, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token: %w (set the token file flag or %s)", err, env)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token: %s is empty", path)
	}
	return tok, nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
