// Command kok-manager runs kok's watchers and its Temporal workers on the control queues.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"kok.dev/cmd/kok-manager/app"
)

func main() {
	var o app.Options
	cmd := &cobra.Command{
		Use:   "kok-manager",
		Short: "Run kok's watchers and workflow worker",
		Long: `kok-manager watches kok's custom resources (Cluster, Machine, NodeRollout, ...) and turns
every change into a Temporal workflow start or signal, copying workflow progress back into status.
It also runs the Temporal workers of the control queues (kok-control-0 ... kok-control-15 and
the legacy kok-control), which execute those workflows.

Run several replicas for availability: one leader runs the watchers, every replica runs the worker.

Example (against the local system started by 'kok dev up'):
  kok-manager --kubeconfig .kok/dev/meta.kubeconfig --temporal-address 127.0.0.1:7233 --temporal-namespace kok`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return app.Run(cmd.Context(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kok-manager:", err)
		os.Exit(1)
	}
}
