package health

import (
	"context"
	"time"

	"github.com/spf13/cobra"
)

// ProbeCommand is the `probe` subcommand every simulated program ships as its package's exec
// health check: exit 0 when the program behind --socket answers /healthz with 200. what names
// the program in the help text.
func ProbeCommand(what string) *cobra.Command {
	var socket string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:          "probe",
		Short:        "Exit 0 when the " + what + " on --socket answers /healthz with 200",
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			_, err := Probe(ctx, socket, "/healthz")
			return err
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "Health socket of the "+what+".")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "How long to wait for an answer.")
	return cmd
}
