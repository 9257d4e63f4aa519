// Command kok is the operator's command line for kok.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"kok.dev/cmd/kok/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.NewRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kok:", err)
		os.Exit(1)
	}
}
