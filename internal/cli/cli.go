// Package cli implements cissan's subcommands, one file each. Every command
// parses its own flag.FlagSet and returns an error; main maps errors to exit
// codes.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// UsageError is a command line that cannot be run as given (exit code 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Env is what a command may touch besides its arguments.
type Env struct {
	Stdout, Stderr io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

var commands = map[string]command{
	"up":        {"run the whole network in one process", runUp},
	"master":    {"run the master node alone, over RabbitMQ", runMaster},
	"hub":       {"run one hub node alone, over RabbitMQ", runHub},
	"enrol":     {"enrol a new hub: the chain records it", runEnrol},
	"registry":  {"run the device registry alone (device API, hub logins, changes over RabbitMQ)", runRegistry},
	"analyzers": {"show or change the analyzer configuration recorded on the chain", runAnalyzers},
	"device":    {"manage devices in the registry (add, list, show, deactivate, reactivate, revoke, rotate)", runDevice},
	"token":     {"manage read tokens: namespace-scoped access for auditors (create, list, revoke)", runToken},
	"nodes":     {"list the nodes the registry knows, or revoke one (its signed requests are refused)", runNodes},
	"verify":    {"verify a proof (verify proof) or a whole data dir (verify data) offline", runVerify},
	"proof":     {"fetch an event's proof bundle from the API", runProof},
	"reindex":   {"rebuild a node's SQLite index from its chain", runReindex},
	"simulate":  {"register devices and publish sensor events over MQTT", runSimulate},
	"bench":     {"measure the pipeline against the bare broker, in one run", runBench},
	"tls":       {"write a test CA and certificates for MQTT over TLS and HTTPS (tls selfsigned)", runTLS},
}

// Run runs the subcommand named by args[0].
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := Env{Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return usagef("unknown command %q", args[0])
	}
	return c.run(ctx, env, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cissan <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'cissan <command> -h' for a command's flags.")
}

// parseFlags parses args into fs, turning flag errors into usage errors.
// Flags and positional arguments may be mixed.
func parseFlags(fs *flag.FlagSet, env Env, args []string) ([]string, error) {
	fs.SetOutput(env.Stderr)
	var pos []string
	// After "--" everything is positional, even what starts with "-".
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, rest...), nil
		}
		if strings.HasPrefix(args[0], "-") && args[0] != "-" {
			continue
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
