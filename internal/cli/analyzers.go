package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const analyzersUsage = `usage: cissan analyzers <show|set> [flags]

  show                 the analyzer configuration in force, its history on the chain, and one waiting for the next block
  set --file FILE      queue a new configuration (JSON; - reads stdin); the next block records it

A configuration names the analyzers and their parameters, for example
  {"range":[{"key":"temperature","min":-40,"max":85}]}
See SPEC.md, "Control records", and docs/analyzers.md.
`

// runAnalyzers shows and changes the analyzer configuration recorded on
// the chain, through the master's API.
func runAnalyzers(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stdout, analyzersUsage)
		if len(args) == 0 {
			return usagef("analyzers: missing command (show, set)")
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("analyzers "+sub, flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8080", "master's API base URL")
	tokenFile := fs.String("token-file", "./data/admin.token", "operator token file (CISSAN_TOKEN overrides)")
	file := fs.String("file", "", "configuration JSON to set (- for stdin)")
	if _, err := parseFlags(fs, env, args[1:]); err != nil {
		return err
	}
	tok, err := operatorToken(*tokenFile)
	if err != nil {
		return err
	}
	switch sub {
	case "show":
		body, err := apiGet(ctx, *api, "/v1/analyzers", tok)
		if err != nil {
			return fmt.Errorf("analyzers show: %w", err)
		}
		_, err = env.Stdout.Write(body)
		return err
	case "set":
		if *file == "" {
			return usagef("analyzers set: --file is required")
		}
		cfg, err := readFile(*file)
		if err != nil {
			return fmt.Errorf("analyzers set: %w", err)
		}
		if !json.Valid(cfg) {
			return fmt.Errorf("analyzers set: %s is not valid JSON", *file)
		}
		body, err := apiPost(ctx, *api, "/v1/analyzers", tok, cfg)
		if err != nil {
			return fmt.Errorf("analyzers set: %w", err)
		}
		_, err = env.Stdout.Write(body)
		return err
	}
	return usagef("analyzers: unknown command %q (show, set)", sub)
}

// readFile reads a file, or standard input for "-".
func readFile(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// apiPost POSTs a JSON body with a bearer token; a non-2xx answer is an
// error carrying the server's message.
func apiPost(ctx context.Context, base, path, token string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return doAPI(req, token)
}
