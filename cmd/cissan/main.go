// Command cissan runs and inspects a tamper-evident IoT event log. See
// README.md for a tour and `cissan help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cissan/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	var ue *cli.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, "cissan:", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "cissan:", err)
	os.Exit(1)
}
