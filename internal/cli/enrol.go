package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"

	"cissan/internal/chain"
)

// runEnrol asks the master to enrol a hub: the chain records it, and it
// takes part from the block after.
func runEnrol(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("enrol", flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8080", "master's API base URL")
	tokenFile := fs.String("token-file", "./data/master/admin.token", "master operator token file (CISSAN_TOKEN overrides)")
	var hubs hubFlags
	fs.Var(&hubs, "hub", "the hub to enrol, as id=PUBLIC_KEY_HEX (from cissan hub --print-key)")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if len(hubs) != 1 {
		return usagef("enrol: give exactly one --hub id=PUBLIC_KEY_HEX")
	}
	tok, err := operatorToken(*tokenFile)
	if err != nil {
		return err
	}
	body, err := json.Marshal(chain.Enrolment{ID: hubs[0].ID, PublicKey: hex.EncodeToString(hubs[0].PublicKey)})
	if err != nil {
		return err
	}
	out, err := apiPost(ctx, *api, "/v1/hubs", tok, body)
	if err != nil {
		return fmt.Errorf("enrol %s: %w", hubs[0].ID, err)
	}
	_, err = env.Stdout.Write(out)
	return err
}
