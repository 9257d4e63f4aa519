package clusters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/kubeflags"
	"kok.dev/cmd/kok/app/render"
)

// qualifiedResource is the resource.group that `-o name` prints, as kubectl does.
const qualifiedResource = "cluster.kok.dev"

// NewGetCommand returns `clusters`, the subcommand of `kok get`.
func NewGetCommand(kube *kubeflags.Flags) *cobra.Command {
	var selector, output string
	cmd := &cobra.Command{
		Use:     "clusters [NAME...]",
		Aliases: []string{"cluster", "kc"},
		Short:   "List Clusters: phase, running and target package versions, masters, endpoint",
		Long: `List Clusters sorted by name, with their phase, the ClusterPackageVersion every master runs,
the one an operation in flight moves to, the number of masters and how many are ready, the API
server endpoint, the provider and their age. -o wide adds the operation in flight (type and step)
and the Cluster's workflow (its Web UI link, or its ID when no Web UI is configured).
kok describe cluster NAME shows one Cluster in detail.`,
		Example: `  kok get clusters
  kok get cluster prod-eu -o wide
  kok get kc -l env=prod -o yaml`,
		RunE: func(cmd *cobra.Command, names []string) error {
			if err := render.CheckOutput(output); err != nil {
				return err
			}
			if selector != "" && len(names) > 0 {
				return errors.New("name clusters or select them with -l, not both")
			}
			sel, err := labels.Parse(selector)
			if err != nil {
				return fmt.Errorf("label selector %q: %w", selector, err)
			}
			cluster, err := kube.Connect()
			if err != nil {
				return err
			}
			cs, err := fetchClusters(cmd.Context(), cluster, names, sel)
			if err != nil && len(cs) == 0 {
				return err
			}
			// Print what was found even when some names were not, like kubectl; then fail.
			if perr := printClusters(cmd.OutOrStdout(), cmd.ErrOrStderr(), cs, output, len(names) == 1, time.Now()); perr != nil {
				return perr
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "Label selector to filter on, such as env=prod or 'region in (eu,us)'.")
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: wide, yaml, json or name (default: a table).")
	return cmd
}

// fetchClusters gets the named Clusters, or lists those sel selects when no name is given. It
// returns the Clusters it found, sorted by name, and an error naming every one it did not find.
func fetchClusters(ctx context.Context, cluster *kubeflags.Cluster, names []string, sel labels.Selector) ([]*kokv1.Cluster, error) {
	if len(names) == 0 {
		var list kokv1.ClusterList
		if err := cluster.Client.List(ctx, &list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, cluster.Explain(err, "list clusters")
		}
		cs := make([]*kokv1.Cluster, len(list.Items))
		for i := range list.Items {
			cs[i] = &list.Items[i]
		}
		sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
		return cs, nil
	}
	names = slices.Clone(names)
	sort.Strings(names)
	names = slices.Compact(names)
	var cs []*kokv1.Cluster
	var missing []string
	for _, n := range names {
		var c kokv1.Cluster
		if err := cluster.Client.Get(ctx, types.NamespacedName{Name: n}, &c); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, fmt.Sprintf("%q", n))
				continue
			}
			return cs, cluster.Explain(err, "get cluster "+n)
		}
		cs = append(cs, &c)
	}
	switch {
	case len(missing) == 1:
		return cs, fmt.Errorf("cluster %s not found on %s (context %q); kok get clusters lists them", missing[0], cluster.Server, cluster.Context)
	case len(missing) > 1:
		return cs, fmt.Errorf("clusters %s not found on %s (context %q); kok get clusters lists them", strings.Join(missing, ", "), cluster.Server, cluster.Context)
	}
	return cs, nil
}

// printClusters writes cs to out in format. single says one Cluster was asked for by name, so
// yaml and json print it alone rather than in a List.
func printClusters(out, errOut io.Writer, cs []*kokv1.Cluster, format string, single bool, now time.Time) error {
	switch format {
	case render.OutputYAML, render.OutputJSON:
		return render.Objects(out, "Cluster", cs, format, single)
	case render.OutputName:
		return render.Names(out, qualifiedResource, cs)
	}
	if len(cs) == 0 {
		return render.NoResources(errOut)
	}
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	header := []string{"NAME", "PHASE", "VERSION", "TARGET", "MASTERS", "READY", "ENDPOINT", "PROVIDER", "AGE"}
	if format == render.OutputWide {
		header = append(header, "OPERATION", "WORKFLOW")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, c := range cs {
		st := &c.Status
		row := []string{c.Name, render.Cell(string(st.Phase), render.None),
			render.Cell(st.CurrentPackageVersion, render.None), render.Cell(st.TargetPackageVersion, render.None),
			fmt.Sprint(masterCount(c)), fmt.Sprint(st.ReadyMasters), render.Cell(st.Endpoint, render.None),
			string(provider(c)), render.Age(c.CreationTimestamp, now)}
		if format == render.OutputWide {
			row = append(row, operationCell(st.Operation), render.WorkflowLink(st.Workflow))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// operationCell is the operation in flight as one cell: its type and step.
func operationCell(op *kokv1.ClusterOperation) string {
	switch {
	case op == nil:
		return render.None
	case op.Step == "":
		return string(op.Type)
	default:
		return string(op.Type) + ": " + render.Cell(op.Step, "")
	}
}

// masterCount is spec.masters.count with the API's default.
func masterCount(c *kokv1.Cluster) int32 {
	if c.Spec.Masters.Count == 0 {
		return 1
	}
	return c.Spec.Masters.Count
}

// provider is spec.provider with the API's default.
func provider(c *kokv1.Cluster) kokv1.ClusterProvider {
	if c.Spec.Provider == "" {
		return kokv1.ProviderProcess
	}
	return c.Spec.Provider
}
