package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"cissan/internal/bitcoin"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/proof"
)

// runVerify dispatches `cissan verify proof` and `cissan verify data`.
func runVerify(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return usagef("verify: want a subcommand: proof or data")
	}
	switch args[0] {
	case "proof":
		return runVerifyProof(ctx, env, args[1:])
	case "data":
		return runVerifyData(ctx, env, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(env.Stdout, "usage: cissan verify proof --network network.json [--event event.json] [--json] proof.json\n"+
			"       cissan verify data [flags] DATADIR")
		return nil
	}
	return usagef("verify: unknown subcommand %q (want proof or data)", args[0])
}

// runVerifyProof checks a proof bundle offline against network.json.
func runVerifyProof(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("verify proof", flag.ContinueOnError)
	networkPath := fs.String("network", "", "the network's `network.json` (required)")
	eventPath := fs.String("event", "", "an event `file` (JSON) that must equal the logged event; - for stdin")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	btcHeader := fs.String("bitcoin-header", "", "a trusted Bitcoin block header (160 hex digits, or a file holding them) to check the proof's Bitcoin block against")
	btcRPC := fs.String("bitcoin-rpc", "", "a Bitcoin node's JSON-RPC URL to check the proof's Bitcoin block against")
	btcAuth := fs.String("bitcoin-rpc-auth", "", "file holding the node's RPC user:password")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: cissan verify proof --network network.json [--event event.json] [--bitcoin-header HEX|--bitcoin-rpc URL] [--json] proof.json|-")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, env, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("verify proof: want one proof file (or - for stdin), got %d arguments", len(pos))
	}
	if *networkPath == "" {
		return usagef("verify proof: --network is required")
	}
	if pos[0] == "-" && *eventPath == "-" {
		return usagef("verify proof: the proof and the event cannot both come from stdin")
	}

	net, err := chain.LoadNetwork(*networkPath)
	if err != nil {
		return fmt.Errorf("verify proof: %w", err)
	}
	data, err := readInput(pos[0])
	if err != nil {
		return fmt.Errorf("verify proof: %w", err)
	}
	var want *event.Event
	if *eventPath != "" {
		raw, err := readInput(*eventPath)
		if err != nil {
			return fmt.Errorf("verify proof: %w", err)
		}
		if want, err = event.Parse(raw, event.DefaultLimits()); err != nil {
			return fmt.Errorf("verify proof: --event %s: %w", *eventPath, err)
		}
	}

	b, err := proof.Parse(data)
	if err != nil {
		return printFailure(env.Stdout, *asJSON, fmt.Errorf("verify proof: %w", err))
	}
	res, err := proof.Verify(b, net)
	if res == nil {
		return printFailure(env.Stdout, *asJSON, fmt.Errorf("verify proof: %w", err))
	}
	// res is set when every check passed, final or not.
	if want != nil {
		if cerr := compareEvent(want, res.Event()); cerr != nil {
			return printFailure(env.Stdout, *asJSON, fmt.Errorf("verify proof: %w", cerr))
		}
		res.Checked = append(res.Checked, "the given event equals the logged event, field by field")
	}
	if res.Anchor != nil && (*btcHeader != "" || *btcRPC != "") {
		if berr := checkBitcoin(ctx, res, *btcHeader, *btcRPC, *btcAuth); berr != nil {
			return printFailure(env.Stdout, *asJSON, fmt.Errorf("verify proof: %w", berr))
		}
	}
	if perr := printResult(env.Stdout, res, *asJSON, err); perr != nil {
		return perr
	}
	if err != nil {
		return fmt.Errorf("verify proof: %w", err)
	}
	return nil
}

// checkBitcoin compares the proof's Bitcoin block with a trusted header
// or with the block a node has at that height.
func checkBitcoin(ctx context.Context, res *proof.Result, header, rpcURL, auth string) error {
	if header != "" {
		s := strings.TrimSpace(header)
		if b, err := os.ReadFile(header); err == nil {
			s = strings.TrimSpace(string(b))
		}
		raw, err := hex.DecodeString(s)
		if err != nil {
			return fmt.Errorf("--bitcoin-header: not hex, nor a file of hex: %w", err)
		}
		h, err := bitcoin.ParseHeader(raw)
		if err != nil {
			return fmt.Errorf("--bitcoin-header: %w", err)
		}
		return res.CheckBitcoin(h.BlockHash(), "the given Bitcoin header")
	}
	c, err := bitcoin.Dial(rpcURL, auth)
	if err != nil {
		return fmt.Errorf("--bitcoin-rpc: %w", err)
	}
	hash, err := c.BlockHash(ctx, res.Anchor.BitcoinHeight)
	if err != nil {
		return fmt.Errorf("--bitcoin-rpc: %w", err)
	}
	return res.CheckBitcoin(hash, "the Bitcoin node at "+c.URL())
}

// printFailure prints err as JSON when asked to, and returns it.
func printFailure(w io.Writer, asJSON bool, err error) error {
	if asJSON {
		out, _ := json.Marshal(map[string]any{"valid": false, "error": err.Error()})
		fmt.Fprintf(w, "%s\n", out)
	}
	return err
}

func printResult(w io.Writer, res *proof.Result, asJSON bool, verr error) error {
	if !asJSON {
		_, err := io.WriteString(w, res.Summary())
		return err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if verr != nil {
		// Not final: still the result, with the reason beside it.
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			return err
		}
		m["error"] = verr.Error()
		if out, err = json.Marshal(m); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// compareEvent reports the first field where the given event differs from
// the logged one. Their JSON renditions decide: equal JSON means equal
// entry bytes for the event.
func compareEvent(given, logged *event.Event) error {
	g, _ := given.MarshalJSON()
	l, _ := logged.MarshalJSON()
	if bytes.Equal(g, l) {
		return nil
	}
	field := "event"
	switch {
	case given.UID != logged.UID:
		field = "uid"
	case given.Timestamp != logged.Timestamp:
		field = "timestamp"
	case given.Namespace != logged.Namespace:
		field = "namespace"
	case given.DeviceUID != logged.DeviceUID:
		field = "device_uid"
	case len(given.Items) != len(logged.Items):
		field = fmt.Sprintf("items (%d given, %d logged)", len(given.Items), len(logged.Items))
	default:
		for i := range given.Items {
			gi, li := given.Items[i], logged.Items[i]
			if gi.Key != li.Key {
				field = fmt.Sprintf("items[%d].key", i)
				break
			}
			ge := &event.Event{Items: []event.Item{gi}}
			le := &event.Event{Items: []event.Item{li}}
			gj, _ := ge.MarshalJSON()
			lj, _ := le.MarshalJSON()
			if !bytes.Equal(gj, lj) {
				field = fmt.Sprintf("items[%d].value", i)
				break
			}
		}
	}
	return fmt.Errorf("event: the given event differs from the logged one in %s\n  given:  %s\n  logged: %s", field, g, l)
}

// readInput reads a file, or stdin for "-".
func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}
