package render

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/internal/tclient"
)

// Describer lays out a `kok describe` page as kubectl does: "Key:<tab>value" lines, and
// sections of indented table rows, aligned together.
type Describer struct {
	buf bytes.Buffer
	w   *tabwriter.Writer
}

// NewDescriber returns an empty page.
func NewDescriber() *Describer {
	d := &Describer{}
	d.w = tabwriter.NewWriter(&d.buf, 0, 8, 2, ' ', 0)
	return d
}

// Line writes one line; tabs separate the columns that are aligned.
func (d *Describer) Line(format string, a ...any) { fmt.Fprintf(d.w, format+"\n", a...) }

// Row writes one indented table row of a section.
func (d *Describer) Row(cells ...string) { d.Line("  %s", strings.Join(cells, "\t")) }

// Conditions writes the Conditions section.
func (d *Describer) Conditions(conds []metav1.Condition, now time.Time) {
	d.Line("Conditions:")
	if len(conds) == 0 {
		d.Row(None)
		return
	}
	d.Row("TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
	for _, c := range conds {
		d.Row(c.Type, string(c.Status), Cell(c.Reason, ""), Age(c.LastTransitionTime, now), Cell(c.Message, ""))
	}
}

// Events writes the Events section: the latest MaxEvents of events, or eventsErr when they
// could not be read (the object is worth showing without them).
func (d *Describer) Events(events []corev1.Event, eventsErr error, now time.Time) {
	d.Line("Events:")
	switch {
	case eventsErr != nil:
		d.Row("cannot show them: " + Cell(eventsErr.Error(), ""))
	case len(events) == 0:
		d.Row(None)
	default:
		shown := LatestEvents(events)
		if len(shown) < len(events) {
			d.Row(fmt.Sprintf("(the latest %d of %d)", len(shown), len(events)))
		}
		d.Row("TYPE", "REASON", "AGE", "FROM", "MESSAGE")
		for i := range shown {
			e := &shown[i]
			d.Row(Cell(e.Type, ""), Cell(e.Reason, ""), EventAge(e, now), Cell(EventSource(e), ""), Cell(e.Message, ""))
		}
	}
}

// Workflow writes the Workflow section: the workflow that owns the changes of an object of
// kind, its Web UI link and the command that prints its history.
func (d *Describer) Workflow(wf *kokv1.WorkflowRef, kind string) {
	d.Line("Workflow:")
	if wf == nil || wf.ID == "" {
		d.Row(fmt.Sprintf("<none>: no workflow has picked this %s up yet; is kok-manager running?", kind))
		return
	}
	d.Row("ID:\t" + wf.ID)
	if wf.RunID != "" {
		d.Row("Run ID:\t" + wf.RunID)
	}
	d.Row("Web UI:\t" + Cell(wf.URL, "<none> (kok-manager runs without a Web UI address)"))
	d.Row(fmt.Sprintf("History:\ttemporal workflow show --workflow-id %s --namespace %s", wf.ID, TemporalNamespace(wf.URL)))
}

// Print aligns the page and writes it to out.
func (d *Describer) Print(out io.Writer) error {
	if err := d.w.Flush(); err != nil {
		return err
	}
	// Empty last cells leave the padding of the cell before them at the end of the line.
	for l := range strings.Lines(d.buf.String()) {
		if _, err := io.WriteString(out, strings.TrimRight(l, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// TemporalNamespace is the Temporal namespace of a Web UI workflow link
// (<base>/namespaces/<ns>/workflows/<id>), or kok's default when there is no link to read it from.
func TemporalNamespace(link string) string {
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

// WorkflowLink is the best one-cell handle on a workflow: the Web UI link, or the ID when the
// manager has no Web UI to link to.
func WorkflowLink(w *kokv1.WorkflowRef) string {
	switch {
	case w == nil:
		return None
	case w.URL != "":
		return w.URL
	default:
		return Cell(w.ID, None)
	}
}
