package describe

import (
	"github.com/spf13/cobra"

	"kok.dev/cmd/kok/app/kubeflags"
)

// NewCommand returns `kok describe` with one subcommand per resource.
func NewCommand(resources ...kubeflags.NewResourceCommand) *cobra.Command {
	return kubeflags.NewVerbCommand(&cobra.Command{
		Use:   "describe TYPE NAME",
		Short: "Show one kok object in detail: its parts, conditions, recent events and workflow",
		Long: `Show one kok object in detail, like kubectl describe: what its spec asks for beside what
kok observed, its conditions, its recent Kubernetes Events and the Temporal workflow that owns
its changes, with the Web UI link. The cluster is the one --kubeconfig and --context choose
($KUBECONFIG or ~/.kube/config when not set).`,
		Example: `  kok describe machine worker-1
  kok describe machine worker-1 --kubeconfig .kok/dev/meta.kubeconfig
  kok describe cluster prod-eu`,
	}, resources...)
}
