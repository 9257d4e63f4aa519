package render

import (
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// None stands for a value that is not there, as in kubectl.
const None = "<none>"

// Age is how long ago t was, the way kubectl prints it.
func Age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// AgePtr is Age for optional times.
func AgePtr(t *metav1.Time, now time.Time) string {
	if t == nil {
		return "<unknown>"
	}
	return Age(*t, now)
}

// Cell makes s safe for one tabwriter cell: a tab or newline in a message would break the
// table's columns. Empty becomes or.
func Cell(s, or string) string {
	if s == "" {
		return or
	}
	return strings.Join(strings.Fields(s), " ")
}

// Labels lists l as k=v pairs sorted by key, or None.
func Labels(l map[string]string) string {
	if len(l) == 0 {
		return None
	}
	kv := make([]string, 0, len(l))
	for k, v := range l {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// Generation is an object's generation and whether its status (observed) has caught up with it.
func Generation(generation, observed int64) string {
	switch {
	case observed == 0:
		return fmt.Sprintf("%d (no status reported yet)", generation)
	case observed >= generation:
		return fmt.Sprintf("%d (status is up to date)", generation)
	default:
		return fmt.Sprintf("%d (status describes generation %d: kok has not caught up with the latest spec yet)", generation, observed)
	}
}
