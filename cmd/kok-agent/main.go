// Command kok-agent runs on every host kok manages and carries out host activities for workflows.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"kok.dev/cmd/kok-agent/app"
)

func main() {
	var o app.Options
	cmd := &cobra.Command{
		Use:   "kok-agent",
		Short: "Keep this host at the state kok declares for it",
		Long: `kok-agent runs on every host that kok manages (a physical node, a VM, a pod, or a simulated
host in the local system). It serves the Temporal task queue kok-host-<host> and carries out what
workflows ask of this host: report facts, install, upgrade and remove packages, write configs,
supervise services, run health checks. It only makes outbound connections to Temporal.

Example (a simulated host for local testing):
  kok-agent --host worker-1 --simulate --root /tmp/hosts/worker-1 --temporal-address 127.0.0.1:7233`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			return app.Run(cmd.Context(), o, log)
		},
	}
	o.AddFlags(cmd.Flags())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kok-agent:", err)
		os.Exit(1)
	}
}
