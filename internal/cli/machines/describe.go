package machines

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/internal/cli/kubeflags"
	"kok.dev/internal/tclient"
)

// eventNamespace is where the Machine workflow records Events about Machines: Machines are
// cluster-scoped, but an Event must live in a namespace.
const eventNamespace = kokv1.EventNamespace

// maxEvents bounds the Events shown: the latest say what is happening now, and the rest would
// push the workflow link off the screen.
const maxEvents = 10

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
of its condition, the isolations holding the node, every condition, the Machine's last ` + fmt.Sprint(maxEvents) + `
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
			events, err := machineEvents(ctx, cluster.Client, &m)
			if err != nil {
				err = cluster.Explain(err, "list events")
			}
			return printDescription(cmd.OutOrStdout(), &m, events, err, time.Now())
		},
	}
}

// machineEvents returns the Events about m. An Event about an earlier Machine of the same name
// (another UID) is not about m.
func machineEvents(ctx context.Context, c client.Client, m *kokv1.Machine) ([]corev1.Event, error) {
	var list corev1.EventList
	err := c.List(ctx, &list, client.InNamespace(eventNamespace), client.MatchingFields{
		"involvedObject.kind": "Machine",
		"involvedObject.name": m.Name,
	})
	if err != nil {
		return nil, err
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.UID != "" && e.InvolvedObject.UID != m.UID {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// printDescription writes the description of m. events are m's Events in any order (or
// eventsErr, when they could not be read); now is the time ages are measured from.
func printDescription(out io.Writer, m *kokv1.Machine, events []corev1.Event, eventsErr error, now time.Time) error {
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', 0)
	line := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	row := func(cells ...string) { line("  %s", strings.Join(cells, "\t")) }

	line("Name:\t%s", m.Name)
	line("Labels:\t%s", labelList(m.Labels))
	line("Created:\t%s (%s ago)", m.CreationTimestamp.UTC().Format(time.RFC3339), age(m.CreationTimestamp, now))
	if m.DeletionTimestamp != nil {
		line("Deleting:\tsince %s ago, waiting for finalizers %s", age(*m.DeletionTimestamp, now), cell(strings.Join(m.Finalizers, ", "), none))
	}
	line("Host:\t%s", hostLine(m))
	line("Phase:\t%s", cell(string(m.Status.Phase), none))
	line("Schedulable:\t%s", schedulableLine(m))
	line("Paused:\t%t", m.Spec.Paused)
	line("Deletion Policy:\t%s", cell(string(m.Spec.DeletionPolicy), string(kokv1.DeletionPolicyDelete)))
	line("Generation:\t%s", generationLine(m))
	line("Drift Check:\t%s", driftLine(m, now))

	line("Packages:")
	pkgs := packageRows(m, now)
	if len(pkgs) == 0 {
		row(none)
	} else {
		row("NAME", "SPEC", "INSTALLED", "PHASE", "AGE", "MESSAGE")
		for _, r := range pkgs {
			row(r...)
		}
	}

	line("Readiness Gates:")
	if len(m.Spec.ReadinessGates) == 0 {
		row(none)
	} else {
		row("CONDITION", "MODE", "STATUS", "MESSAGE")
		for _, g := range m.Spec.ReadinessGates {
			status, msg := "not reported", ""
			if c := meta.FindStatusCondition(m.Status.Conditions, g.ConditionType); c != nil {
				status, msg = string(c.Status), c.Message
			}
			row(g.ConditionType, cell(string(g.Mode), string(kokv1.GateContinuous)), status, cell(msg, ""))
		}
	}

	line("Isolations:")
	if len(m.Spec.Isolations) == 0 {
		row(none)
	} else {
		row("REQUESTER", "AGE", "REASON")
		for _, iso := range m.Spec.Isolations {
			row(iso.Requester, agePtr(iso.Since, now), cell(iso.Reason, ""))
		}
	}

	line("Conditions:")
	if len(m.Status.Conditions) == 0 {
		row(none)
	} else {
		row("TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
		for _, c := range m.Status.Conditions {
			row(c.Type, string(c.Status), cell(c.Reason, ""), age(c.LastTransitionTime, now), cell(c.Message, ""))
		}
	}

	line("Events:")
	switch {
	case eventsErr != nil:
		row("cannot show them: " + cell(eventsErr.Error(), ""))
	case len(events) == 0:
		row(none)
	default:
		shown := latestEvents(events)
		if len(shown) < len(events) {
			row(fmt.Sprintf("(the latest %d of %d)", len(shown), len(events)))
		}
		row("TYPE", "REASON", "AGE", "FROM", "MESSAGE")
		for i := range shown {
			e := &shown[i]
			row(cell(e.Type, ""), cell(e.Reason, ""), eventAge(e, now), cell(eventSource(e), ""), cell(e.Message, ""))
		}
	}

	line("Workflow:")
	if wf := m.Status.Workflow; wf == nil || wf.ID == "" {
		row("<none>: no workflow has picked this Machine up yet; is kok-manager running?")
	} else {
		row("ID:\t" + wf.ID)
		if wf.RunID != "" {
			row("Run ID:\t" + wf.RunID)
		}
		row("Web UI:\t" + cell(wf.URL, "<none> (kok-manager runs without a Web UI address)"))
		row(fmt.Sprintf("History:\ttemporal workflow show --workflow-id %s --namespace %s", wf.ID, temporalNamespace(wf.URL)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// Empty last cells leave the padding of the cell before them at the end of the line.
	for l := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(out, strings.TrimRight(l, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func labelList(l map[string]string) string {
	if len(l) == 0 {
		return none
	}
	kv := make([]string, 0, len(l))
	for k, v := range l {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// hostLine is the agent host and what its agent reported about it.
func hostLine(m *kokv1.Machine) string {
	h := m.Status.Host
	if h == nil {
		return m.HostName()
	}
	var facts []string
	if h.OS != "" {
		facts = append(facts, cell(h.OS, ""))
	}
	if h.Kernel != "" {
		facts = append(facts, "kernel "+cell(h.Kernel, ""))
	}
	if h.Arch != "" {
		facts = append(facts, cell(h.Arch, ""))
	}
	if h.AgentVersion != "" {
		facts = append(facts, "agent "+cell(h.AgentVersion, ""))
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
	return "false: " + cell(c.Message, c.Reason)
}

func generationLine(m *kokv1.Machine) string {
	obs := m.Status.ObservedGeneration
	switch {
	case obs == 0:
		return fmt.Sprintf("%d (no status reported yet)", m.Generation)
	case obs >= m.Generation:
		return fmt.Sprintf("%d (status is up to date)", m.Generation)
	default:
		return fmt.Sprintf("%d (status describes generation %d: kok has not caught up with the latest spec yet)", m.Generation, obs)
	}
}

func driftLine(m *kokv1.Machine, now time.Time) string {
	every := defaultDriftCheckInterval
	if m.Spec.DriftCheckInterval != nil {
		every = m.Spec.DriftCheckInterval.Duration
	}
	last := "never yet"
	if t := m.Status.LastDriftCheckTime; t != nil {
		last = age(*t, now) + " ago"
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
		r := []string{n, cell(spec[n], none), none, none, "", ""}
		if c := status[n]; c != nil {
			r[2], r[3], r[4], r[5] = cell(c.Version, none), cell(string(c.Phase), none), agePtr(c.LastTransitionTime, now), cell(c.Message, "")
		}
		rows = append(rows, r)
	}
	return rows
}

// latestEvents returns the last maxEvents of events, oldest first as kubectl lists them.
func latestEvents(events []corev1.Event) []corev1.Event {
	sorted := append([]corev1.Event(nil), events...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ti, tj := lastSeen(&sorted[i]), lastSeen(&sorted[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return sorted[i].Name < sorted[j].Name
	})
	if len(sorted) > maxEvents {
		sorted = sorted[len(sorted)-maxEvents:]
	}
	return sorted
}

// lastSeen is when an Event last happened, whichever API (core/v1 or events.k8s.io) wrote it.
func lastSeen(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	default:
		return e.CreationTimestamp.Time
	}
}

// eventAge is kubectl's: how long ago the Event last happened and, for a repeated one, how often
// and since when.
func eventAge(e *corev1.Event, now time.Time) string {
	last := duration.HumanDuration(now.Sub(lastSeen(e)))
	count, first := e.Count, e.FirstTimestamp.Time
	if e.Series != nil {
		count = e.Series.Count
	}
	if first.IsZero() {
		first = e.EventTime.Time
	}
	if count <= 1 || first.IsZero() {
		return last
	}
	return fmt.Sprintf("%s (x%d over %s)", last, count, duration.HumanDuration(now.Sub(first)))
}

func eventSource(e *corev1.Event) string {
	if e.Source.Component != "" {
		return e.Source.Component
	}
	return e.ReportingController
}

// temporalNamespace is the Temporal namespace of a Web UI workflow link
// (<base>/namespaces/<ns>/workflows/<id>), or kok's default when there is no link to read it from.
func temporalNamespace(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return tclient.DefaultNamespace
	}
	parts := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == "namespaces" && parts[i+2] == "workflows" {
			if ns, err := url.PathUnescape(parts[i+1]); err == nil && ns != "" {
				return ns
			}
		}
	}
	return tclient.DefaultNamespace
}
