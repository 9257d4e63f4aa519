// Command kok-sim-node plays one node component of a simulated host: container-runtime,
// log-collector or node-problem-detector. Each serves /healthz on a unix socket under the host
// root; "kok-sim-node probe" is the exec health check of their packages.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kok.dev/dev/simnode/daemon"
	"kok.dev/dev/simnode/health"
)

func main() {
	o := daemon.Options{}
	cmd := &cobra.Command{
		Use:   "kok-sim-node ROLE",
		Short: "Play one node component of a simulated host (" + strings.Join(daemon.Roles, ", ") + ")",
		Example: `  kok-sim-node container-runtime --socket ${KOK_ROOT}/run/kok-sim/container-runtime.sock \
    --config ${KOK_ROOT}/etc/kok-sim/container-runtime.toml --version 1.0.0`,
		SilenceUsage: true,
		Args:         cobra.ExactArgs(1),
		ValidArgs:    daemon.Roles,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Role = args[0]
			o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("role", o.Role)
			return daemon.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Version, "version", "0.0.0", "Version the component reports on /version.")
	f.StringVar(&o.Root, "root", os.Getenv("KOK_ROOT"), "Root directory of the simulated host (default $KOK_ROOT, which kok-agent sets).")
	f.StringVar(&o.Socket, "socket", "", "Unix socket serving /healthz and /version.")
	f.StringVar(&o.Config, "config", "", "Config file the component must find to start.")
	f.DurationVar(&o.Interval, "interval", 10*time.Second, "How often the component does its work.")
	f.BoolVar(&o.Fail, "fail", false, "Exit at once with an error: a release that does not start.")
	cmd.AddCommand(health.ProbeCommand("component"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kok-sim-node:", err)
		os.Exit(1)
	}
}
