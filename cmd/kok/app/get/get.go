package get

import (
	"github.com/spf13/cobra"

	"kok.dev/cmd/kok/app/kubeflags"
)

// NewCommand returns `kok get` with one subcommand per resource.
func NewCommand(resources ...kubeflags.NewResourceCommand) *cobra.Command {
	return kubeflags.NewVerbCommand(&cobra.Command{
		Use:   "get TYPE [NAME...]",
		Short: "List kok objects as a table, or print them as YAML or JSON",
		Long: `List kok objects of one type, like kubectl get: a table by default, more columns with
-o wide, whole objects with -o yaml or -o json. The cluster is the one --kubeconfig and
--context choose ($KUBECONFIG or ~/.kube/config when not set).`,
		Example: `  kok get machines
  kok get machines -o wide --kubeconfig .kok/dev/meta.kubeconfig
  kok get clusters`,
	}, resources...)
}
