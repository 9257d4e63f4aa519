package machines

import (
	"context"
	"encoding/json"
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
	"sigs.k8s.io/yaml"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/internal/cli/kubeflags"
)

// Output formats of `kok get machines`; the empty format is the table.
const (
	outputWide = "wide"
	outputYAML = "yaml"
	outputJSON = "json"
	outputName = "name"
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
			switch output {
			case "", outputWide, outputYAML, outputJSON, outputName:
			default:
				return fmt.Errorf("unknown output format %q: use -o wide, yaml, json or name (or leave -o out for the table)", output)
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
	switch format {
	case outputYAML, outputJSON:
		return printObjects(out, ms, format, single)
	case outputName:
		for _, m := range ms {
			if _, err := fmt.Fprintf(out, "%s/%s\n", qualifiedResource, m.Name); err != nil {
				return err
			}
		}
		return nil
	}
	if len(ms) == 0 {
		_, err := fmt.Fprintln(errOut, "No resources found.")
		return err
	}
	return printTable(out, ms, format == outputWide, now)
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
		row := []string{m.Name, cell(string(m.Status.Phase), none), cell(m.Status.Versions, none),
			fmt.Sprint(m.Status.Schedulable), age(m.CreationTimestamp, now)}
		if wide {
			row = append(row, m.HostName(), osKernel(m.Status.Host), workflowLink(m.Status.Workflow))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func osKernel(h *kokv1.HostFacts) string {
	if h == nil || (h.OS == "" && h.Kernel == "") {
		return none
	}
	return cell(h.OS, "<unknown>") + "/" + cell(h.Kernel, "<unknown>")
}

// workflowLink is the best handle on a Machine's workflow: the Web UI link, or the ID when the
// manager has no Web UI to link to.
func workflowLink(w *kokv1.WorkflowRef) string {
	switch {
	case w == nil:
		return none
	case w.URL != "":
		return w.URL
	default:
		return cell(w.ID, none)
	}
}

// list is the List kubectl prints for several objects, so the output can be applied again.
type list struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Items      []kokv1.Machine `json:"items"`
}

func printObjects(out io.Writer, ms []kokv1.Machine, format string, single bool) error {
	items := make([]kokv1.Machine, len(ms))
	for i := range ms {
		items[i] = *ms[i].DeepCopy()
		// The client drops type information from decoded objects; the printed ones need it.
		items[i].APIVersion = kokv1.SchemeGroupVersion.String()
		items[i].Kind = "Machine"
		// Server bookkeeping nobody reads here, as kubectl hides it by default.
		items[i].ManagedFields = nil
	}
	var v any = list{APIVersion: "v1", Kind: "List", Items: items}
	if single && len(items) == 1 {
		v = items[0]
	}
	var b []byte
	var err error
	if format == outputJSON {
		b, err = json.MarshalIndent(v, "", "    ")
		b = append(b, '\n')
	} else {
		b, err = yaml.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("encode machines as %s: %w", format, err)
	}
	_, err = out.Write(b)
	return err
}
