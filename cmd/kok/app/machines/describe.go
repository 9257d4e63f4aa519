package machines

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/kubeflags"
	"kok.dev/cmd/kok/app/render"
)

// defaultDriftCheckInterval is the API's default for spec.driftCheckInterval.
const defaultDriftCheckInterval = 5 * time.Minute

// NewDescribeCommand returns `machine`, the subcommand of `kok describe`.
func NewDescribeCommand(kube *kubeflags.Flags) *cobra.Command {
	return &cobra.Command{
		Use:     "machine NAME",
		Aliases: []string{"machines", "mach"},
		Short:   "Show one Machine: packages, readiness gates, conditions, recent events, workflow",
		Long: `Show one Machine in detail: each package's spec version beside what runs on the host (and
packages still installed that the spec no longer names), each readiness gate with the status
of its condition, the isolations holding the node, every condition, the Machine's last ` + fmt.Sprint(render.MaxEvents) + `
Events, and its Temporal workflow with the Web UI link and the command that prints its history.`,
		Example: `  kok describe machine worker-1`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("name one machine: kok describe machine NAME (got %d names; kok get machines lists them)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cluster, err := kube.Connect()
			if err != nil {
				return err
			}
			var m kokv1.Machine
			if err := cluster.Client.Get(ctx, types.NamespacedName{Name: args[0]}, &m); err != nil {
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("machine %q not found on %s (context %q); kok get machines lists them", args[0], cluster.Server, cluster.Context)
				}
				return cluster.Explain(err, "get machine "+args[0])
			}
			// The Machine is worth showing even when its Events cannot be read (say, RBAC
			// allows Machines but not Events): the error takes the Events' place.
			events, err := render.ObjectEvents(ctx, cluster.Client, "Machine", &m)
			if err != nil {
				err = cluster.Explain(err, "list events")
			}
			return printDescription(cmd.OutOrStdout(), &m, events, err, time.Now())
		},
	}
}

// printDescription writes the description of m. events are m's Events in any order (or
// eventsErr, when they could not be read); now is the time ages are measured from.
func printDescription(out io.Writer, m *kokv1.Machine, events []corev1.Event, eventsErr error, now time.Time) error {
	d := render.NewDescriber()
	d.Line("Name:\t%s", m.Name)
	d.Line("Labels:\t%s", render.Labels(m.Labels))
	d.Line("Created:\t%s (%s ago)", m.CreationTimestamp.UTC().Format(time.RFC3339), render.Age(m.CreationTimestamp, now))
	if m.DeletionTimestamp != nil {
		d.Line("Deleting:\tsince %s ago, waiting for finalizers %s", render.Age(*m.DeletionTimestamp, now), render.Cell(strings.Join(m.Finalizers, ", "), render.None))
	}
	d.Line("Host:\t%s", hostLine(m))
	d.Line("Phase:\t%s", render.Cell(string(m.Status.Phase), render.None))
	d.Line("Schedulable:\t%s", schedulableLine(m))
	d.Line("Paused:\t%t", m.Spec.Paused)
	d.Line("Deletion Policy:\t%s", render.Cell(string(m.Spec.DeletionPolicy), string(kokv1.DeletionPolicyDelete)))
	d.Line("Generation:\t%s", render.Generation(m.Generation, m.Status.ObservedGeneration))
	d.Line("Drift Check:\t%s", driftLine(m, now))

	d.Line("Packages:")
	pkgs := packageRows(m, now)
	if len(pkgs) == 0 {
		d.Row(render.None)
	} else {
		d.Row("NAME", "SPEC", "INSTALLED", "PHASE", "AGE", "MESSAGE")
		for _, r := range pkgs {
			d.Row(r...)
		}
	}

	d.Line("Readiness Gates:")
	if len(m.Spec.ReadinessGates) == 0 {
		d.Row(render.None)
	} else {
		d.Row("CONDITION", "MODE", "STATUS", "MESSAGE")
		for _, g := range m.Spec.ReadinessGates {
			status, msg := "not reported", ""
			if c := meta.FindStatusCondition(m.Status.Conditions, g.ConditionType); c != nil {
				status, msg = string(c.Status), c.Message
			}
			d.Row(g.ConditionType, render.Cell(string(g.Mode), string(kokv1.GateContinuous)), status, render.Cell(msg, ""))
		}
	}

	d.Line("Isolations:")
	if len(m.Spec.Isolations) == 0 {
		d.Row(render.None)
	} else {
		d.Row("REQUESTER", "AGE", "REASON")
		for _, iso := range m.Spec.Isolations {
			d.Row(iso.Requester, render.AgePtr(iso.Since, now), render.Cell(iso.Reason, ""))
		}
	}

	d.Conditions(m.Status.Conditions, now)
	d.Events(events, eventsErr, now)
	d.Workflow(m.Status.Workflow, "Machine")
	return d.Print(out)
}

// hostLine is the agent host and what its agent reported about it.
func hostLine(m *kokv1.Machine) string {
	h := m.Status.Host
	if h == nil {
		return m.HostName()
	}
	var facts []string
	if h.OS != "" {
		facts = append(facts, render.Cell(h.OS, ""))
	}
	if h.Kernel != "" {
		facts = append(facts, "kernel "+render.Cell(h.Kernel, ""))
	}
	if h.Arch != "" {
		facts = append(facts, render.Cell(h.Arch, ""))
	}
	if h.AgentVersion != "" {
		facts = append(facts, "agent "+render.Cell(h.AgentVersion, ""))
	}
	if len(facts) == 0 {
		return m.HostName()
	}
	return m.HostName() + " (" + strings.Join(facts, ", ") + ")"
}

// schedulableLine says whether the node is schedulable and, when it is not, why: the Schedulable
// condition's message names the gate or isolation that holds it back.
func schedulableLine(m *kokv1.Machine) string {
	if m.Status.Schedulable {
		return "true"
	}
	c := meta.FindStatusCondition(m.Status.Conditions, kokv1.MachineConditionSchedulable)
	if c == nil || (c.Message == "" && c.Reason == "") {
		return "false"
	}
	return "false: " + render.Cell(c.Message, c.Reason)
}

func driftLine(m *kokv1.Machine, now time.Time) string {
	every := defaultDriftCheckInterval
	if m.Spec.DriftCheckInterval != nil {
		every = m.Spec.DriftCheckInterval.Duration
	}
	last := "never yet"
	if t := m.Status.LastDriftCheckTime; t != nil {
		last = render.Age(*t, now) + " ago"
	}
	return fmt.Sprintf("every %s, last %s", every, last)
}

// packageRows are one row per package the spec names or the host still has, by name: the spec's
// version beside the installed one, its phase, time in that phase and message.
func packageRows(m *kokv1.Machine, now time.Time) [][]string {
	spec := map[string]string{}
	for _, p := range m.Spec.Packages {
		spec[p.Name] = p.Version
	}
	status := map[string]*kokv1.MachineComponentStatus{}
	for i := range m.Status.Components {
		status[m.Status.Components[i].Name] = &m.Status.Components[i]
	}
	var names []string
	for n := range spec {
		names = append(names, n)
	}
	for n := range status {
		if _, ok := spec[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	rows := make([][]string, 0, len(names))
	for _, n := range names {
		r := []string{n, render.Cell(spec[n], render.None), render.None, render.None, "", ""}
		if c := status[n]; c != nil {
			r[2], r[3], r[4], r[5] = render.Cell(c.Version, render.None), render.Cell(string(c.Phase), render.None), render.AgePtr(c.LastTransitionTime, now), render.Cell(c.Message, "")
		}
		rows = append(rows, r)
	}
	return rows
}
