// Command kafkapush pushes records and CloudEvents to Kafka, one per input line, like
// `kcat -P` but made for Brook's events. See docs/kafkapush.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/brook-dev/brook/tools/kafkapush/internal/cli"
)

func main() {
	// The first Ctrl-C stops reading and flushes what was read (the summary still prints);
	// after it, signals are back to their defaults, so a second Ctrl-C exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	code := cli.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}
