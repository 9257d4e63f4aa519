package app

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"kok.dev/cmd/kok/app/clusters"
	"kok.dev/cmd/kok/app/codecserver"
	"kok.dev/cmd/kok/app/describe"
	"kok.dev/cmd/kok/app/dev"
	"kok.dev/cmd/kok/app/get"
	"kok.dev/cmd/kok/app/machines"
)

// NewRootCommand returns `kok` with every subcommand.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "kok",
		Short: "Keep fleets of Kubernetes clusters and their nodes at a declared final state",
		Long: `kok (Kube-on-Kube) keeps business clusters' control planes (Cluster) and their worker nodes
(Machine) at a declared final state. Every long operation is a Temporal workflow you can watch
and signal in the Temporal Web UI; custom resources are the declaration and the dashboard.

Start here:
  kok dev up                   bring up the whole system on this machine: Temporal + Web UI, a meta
                               cluster, kok-manager, simulated hosts and a demo business cluster
  kok dev status               check every part of it
  kok get clusters             business clusters; kok describe cluster NAME for the detail
  kok cluster upgrade NAME --to VERSION, kok cluster rollback NAME
  kok get machines             nodes (with --kubeconfig of the business cluster)
  kok machine retry NAME       retry the packages a Machine gave up on, without a spec edit`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		dev.NewCommand(),
		get.NewCommand(machines.NewGetCommand, clusters.NewGetCommand),
		describe.NewCommand(machines.NewDescribeCommand, clusters.NewDescribeCommand),
		clusters.NewClusterCommand(),
		machines.NewMachineCommand(),
		clusters.NewKubeconfigCommand(),
		codecserver.NewCommand(),
		codecserver.NewKeyCommand(),
		newVersionCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kok's version and the Go module versions it was built with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi, ok := debug.ReadBuildInfo()
			if !ok {
				return fmt.Errorf("no build information in this binary")
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "kok %s (%s)\n", bi.Main.Version, bi.GoVersion)
			for _, d := range bi.Deps {
				switch d.Path {
				case "go.temporal.io/sdk", "go.temporal.io/server", "k8s.io/client-go", "sigs.k8s.io/controller-runtime":
					fmt.Fprintf(out, "  %s %s\n", d.Path, d.Version)
				}
			}
			return nil
		},
	}
}
