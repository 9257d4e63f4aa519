package render

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
)

// MaxEvents bounds the Events shown: the latest say what is happening now, and the rest would
// push the workflow link off the screen.
const MaxEvents = 10

// ObjectEvents returns the Events kok recorded about the cluster-scoped kok object obj of kind.
// They live in kokv1.EventNamespace, since an Event must live in some namespace. An Event about
// an earlier object of the same name (another UID), or about another group's kind of the same
// name (Cluster API's Cluster, say), is not about obj.
func ObjectEvents(ctx context.Context, c client.Client, kind string, obj client.Object) ([]corev1.Event, error) {
	var list corev1.EventList
	err := c.List(ctx, &list, client.InNamespace(kokv1.EventNamespace), client.MatchingFields{
		"involvedObject.kind": kind,
		"involvedObject.name": obj.GetName(),
	})
	if err != nil {
		return nil, err
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.UID != "" && e.InvolvedObject.UID != obj.GetUID() {
			continue
		}
		if av := e.InvolvedObject.APIVersion; av != "" && !strings.HasPrefix(av, kokv1.GroupName+"/") {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// LatestEvents returns the last MaxEvents of events, oldest first as kubectl lists them.
func LatestEvents(events []corev1.Event) []corev1.Event {
	sorted := append([]corev1.Event(nil), events...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ti, tj := lastSeen(&sorted[i]), lastSeen(&sorted[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return sorted[i].Name < sorted[j].Name
	})
	if len(sorted) > MaxEvents {
		sorted = sorted[len(sorted)-MaxEvents:]
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

// EventAge is kubectl's: how long ago the Event last happened and, for a repeated one, how often
// and since when.
func EventAge(e *corev1.Event, now time.Time) string {
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

// EventSource is who recorded the Event.
func EventSource(e *corev1.Event) string {
	if e.Source.Component != "" {
		return e.Source.Component
	}
	return e.ReportingController
}
