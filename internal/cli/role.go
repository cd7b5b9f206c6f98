package cli

import (
	"errors"
	"flag"
	"os"

	"cissan/internal/config"
)

// parseRoleFlags reads a role's settings the way every role does: command
// line, then CISSAN_* environment variables, then the --config file
// (internal/config). Roles take flags only.
func parseRoleFlags(fs *flag.FlagSet, env Env, args []string) error {
	fs.SetOutput(env.Stderr)
	fs.String(config.ConfigFlag, "", "JSON file of flag values, keyed by flag name (see docs/operations.md)")
	pos, err := config.Load(fs, args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return usagef("%s: %v", fs.Name(), err)
	}
	if len(pos) > 0 {
		return usagef("%s: unexpected argument %q (it takes flags only)", fs.Name(), pos[0])
	}
	return nil
}
