package machines

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
const qualifiedResource = "machine.kok.dev"

// NewGetCommand returns `machines`, the subcommand of `kok get`.
func NewGetCommand(kube *kubeflags.Flags) *cobra.Command {
	var selector, output string
	cmd := &cobra.Command{
		Use:     "machines [NAME...]",
		Aliases: []string{"machine", "mach"},
		Short:   "List Machines: phase, running versions, schedulability",
		Long: `List Machines sorted by name, with their phase, the versions of the packages running on them,
whether the node is schedulable and their age. -o wide adds the agent host, its OS and kernel,
and the Machine's workflow (its Web UI link, or its ID when no Web UI is configured).
kok describe machine NAME shows one Machine in detail.`,
		Example: `  kok get machines
  kok get machines worker-1 worker-2 -o wide
  kok get machines -l pool=gpu -o yaml`,
		RunE: func(cmd *cobra.Command, names []string) error {
			if err := render.CheckOutput(output); err != nil {
				return err
			}
			if selector != "" && len(names) > 0 {
				return errors.New("name machines or select them with -l, not both")
			}
			sel, err := labels.Parse(selector)
			if err != nil {
				return fmt.Errorf("label selector %q: %w", selector, err)
			}
			cluster, err := kube.Connect()
			if err != nil {
				return err
			}
			ms, err := fetchMachines(cmd.Context(), cluster, names, sel)
			if err != nil && len(ms) == 0 {
				return err
			}
			// Print what was found even when some names were not, like kubectl; then fail.
			if perr := printMachines(cmd.OutOrStdout(), cmd.ErrOrStderr(), ms, output, len(names) == 1, time.Now()); perr != nil {
				return perr
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "Label selector to filter on, such as pool=gpu or 'zone in (a,b)'.")
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: wide, yaml, json or name (default: a table).")
	return cmd
}

// fetchMachines gets the named Machines, or lists those sel selects when no name is given. It
// returns the Machines it found, sorted by name, and an error naming every one it did not find.
func fetchMachines(ctx context.Context, cluster *kubeflags.Cluster, names []string, sel labels.Selector) ([]kokv1.Machine, error) {
	if len(names) == 0 {
		var list kokv1.MachineList
		if err := cluster.Client.List(ctx, &list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, cluster.Explain(err, "list machines")
		}
		sortByName(list.Items)
		return list.Items, nil
	}
	names = slices.Clone(names)
	sort.Strings(names)
	names = slices.Compact(names)
	var ms []kokv1.Machine
	var missing []string
	for _, n := range names {
		var m kokv1.Machine
		if err := cluster.Client.Get(ctx, types.NamespacedName{Name: n}, &m); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, fmt.Sprintf("%q", n))
				continue
			}
			return ms, cluster.Explain(err, "get machine "+n)
		}
		ms = append(ms, m)
	}
	if len(missing) == 1 {
		return ms, fmt.Errorf("machine %s not found on %s (context %q); kok get machines lists them", missing[0], cluster.Server, cluster.Context)
	}
	if len(missing) > 1 {
		return ms, fmt.Errorf("machines %s not found on %s (context %q); kok get machines lists them", strings.Join(missing, ", "), cluster.Server, cluster.Context)
	}
	return ms, nil
}

func sortByName(ms []kokv1.Machine) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
}

// printMachines writes ms to out in format. single says one Machine was asked for by name, so
// yaml and json print it alone rather than in a List. "No resources found." goes to errOut, as
// kubectl does, so that scripts reading out see nothing.
func printMachines(out, errOut io.Writer, ms []kokv1.Machine, format string, single bool, now time.Time) error {
	ptrs := make([]*kokv1.Machine, len(ms))
	for i := range ms {
		ptrs[i] = &ms[i]
	}
	switch format {
	case render.OutputYAML, render.OutputJSON:
		return render.Objects(out, "Machine", ptrs, format, single)
	case render.OutputName:
		return render.Names(out, qualifiedResource, ptrs)
	}
	if len(ms) == 0 {
		return render.NoResources(errOut)
	}
	return printTable(out, ms, format == render.OutputWide, now)
}

// printTable writes the kubectl-like table of ms.
func printTable(out io.Writer, ms []kokv1.Machine, wide bool, now time.Time) error {
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	header := []string{"NAME", "PHASE", "VERSIONS", "SCHEDULABLE", "AGE"}
	if wide {
		header = append(header, "HOST", "OS/KERNEL", "WORKFLOW")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i := range ms {
		m := &ms[i]
		row := []string{m.Name, render.Cell(string(m.Status.Phase), render.None), render.Cell(m.Status.Versions, render.None),
			fmt.Sprint(m.Status.Schedulable), render.Age(m.CreationTimestamp, now)}
		if wide {
			row = append(row, m.HostName(), osKernel(m.Status.Host), render.WorkflowLink(m.Status.Workflow))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func osKernel(h *kokv1.HostFacts) string {
	if h == nil || (h.OS == "" && h.Kernel == "") {
		return render.None
	}
	return render.Cell(h.OS, "<unknown>") + "/" + render.Cell(h.Kernel, "<unknown>")
}
